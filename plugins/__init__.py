"""check_fastcgi: a monitoring plugin that speaks FastCGI to PHP-FPM and
other FastCGI servers. ``cli.main`` is the entry point."""

__version__ = "0.1.0"
