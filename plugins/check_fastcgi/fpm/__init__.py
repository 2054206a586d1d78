"""What we know of PHP-FPM beyond FastCGI: its status page
(``status_page``, free of nagiosplugin) and counter rates kept between runs
(``rates``)."""
