"""The CGI parameters of a request: exactly what the mode and its options
name, never the plugin's own environment (cgi-fcgi's classic mistake)."""

from __future__ import annotations

from fcgi_wire._values import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from typing import Dict, Optional, Sequence, Tuple


def param_pair(text: str) -> Tuple[str, str]:
    """--param NAME=VALUE; a ValueError that says what it is not."""
    name, equals, value = text.partition("=")
    if not equals or not name or name != name.strip():
        raise ValueError(f"{text!r} is not NAME=VALUE")
    return name, value


def build_params(
    path: str,
    *,
    script_filename: Optional[str] = None,
    query: str = "",
    method: str = "GET",
    body: bytes = b"",
    extra: Sequence[Tuple[str, str]] = (),
) -> Dict[str, str]:
    """PHP-FPM routes on SCRIPT_NAME and needs SCRIPT_FILENAME and
    REQUEST_METHOD present, or it answers nothing at all."""
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        # RFC 3875 requires these; WSGI servers (flup) complain without them.
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": f"check_fastcgi/{__version__}",
        "HTTP_USER_AGENT": f"check_fastcgi/{__version__}",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": path,
        "SCRIPT_FILENAME": script_filename or path,
        "DOCUMENT_URI": path,
        "REQUEST_URI": f"{path}?{query}" if query else path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    if body:
        # What a browser form and curl -d send; --param CONTENT_TYPE=... overrides.
        params["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    params.update(extra)
    return params
