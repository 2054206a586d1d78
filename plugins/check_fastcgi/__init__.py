"""check_fastcgi: a monitoring plugin that speaks FastCGI to PHP-FPM and
other FastCGI servers.

The package, from the command line down:

- ``cli``: parses the command line into a mode, its frozen options and a
  ``target.Target``; usage errors end there.
- ``runner``: runs one check in this process (safety timer, signals, the
  guard that turns the unexpected into one UNKNOWN line).
- ``output``: every word the process prints, as Nagios text or one JSON
  document, for results and early ends alike.
- ``modes/``: one module per mode (``handshake``, ``ping``, ``status``), each
  a ``modes.Mode``: its options, and a nagiosplugin Check built from them.
- ``fpm/``: what we know of PHP-FPM: its status page (``status_page``) and
  counter rates kept between runs (``rates``).
- ``failures``, ``text``, ``cgi_params``, ``statefile``: shared pieces (how a
  failure is worded, escaping server text, a request's CGI parameters, a
  state file a local user cannot steer).

The FastCGI client itself is the separate package ``fcgi_wire``.
"""

__version__ = "0.2.0"
