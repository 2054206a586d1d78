"""``check_fastcgi discover``: every PHP-FPM pool of a host, from FPM's
configuration (and the masters running now), as a table, Zabbix low-level
discovery, or Icinga 2, Nagios and monit definitions.

- ``pools``: a configured pool as checks: the address check_fastcgi takes,
  the modes that can run, and how to enable the others;
- ``formats``: the outputs;
- ``main``: the command line.
"""
