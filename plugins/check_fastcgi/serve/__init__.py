"""``check_fastcgi serve``: the long-running HTTP health sidecar and
Prometheus exporter.

A subsystem of its own: it builds the same mode checks as the plugin and
runs them in threads, with none of the one-shot machinery (no process-wide
timer, no exit after printing, no module state shared with the plugin).

- ``config``: targets and their per-mode options, from the command line, a
  TOML file or fastcgi-healthcheck's environment variables;
- ``probes``: one check of one target in this process, single flight per
  target and mode, a bound on exchanges per target, an optional cache, and
  the last outcome of each for /health;
- ``exporter``: a prometheus_client collector under hipages/php-fpm_exporter's
  metric names, built per scrape around its deadline, fanning out over a
  small thread pool of the server's;
- ``web``: ``--web.config.file``, TLS and basic auth in the Prometheus
  exporter-toolkit's format;
- ``http``: the HTTP server and its routes;
- ``main``: the command line, signals, draining.
"""
