"""What a request gives back: the CGI response (RFC 3875 section 6) parsed
from FCGI_STDOUT, plus what FastCGI itself reported."""

from __future__ import annotations

import re

from ._spec import ProtocolStatus
from ._values import TYPE_CHECKING, Value
from .errors import RemoteProtocolError

if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

#: A Status: header's value. A plain string: compiled (and cached by re)
#: only when a reply carries one, which most do not.
_STATUS = r"(\d{3})(?:[ \t]+(.*))?\Z"

#: Bounds on the CGI header block: a real one is a few hundred bytes.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 200


class Response(Value):
    """A completed FCGI_RESPONDER request.

    ``status`` comes from the CGI ``Status:`` header: 200 without one, 302
    when there is only a ``Location:`` (RFC 3875 6.2.3).
    """

    status: int
    reason: str
    headers: Tuple[Tuple[str, str], ...]
    body: bytes
    stderr: bytes = b""
    app_status: int = 0
    protocol_status: ProtocolStatus = ProtocolStatus.REQUEST_COMPLETE
    elapsed: float = 0.0

    def header(self, name: str) -> Optional[str]:
        """The first header of that name (any case), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class ValuesReply(Value):
    """The answer to FCGI_GET_VALUES. ``management_supported`` is False when
    the server answered FCGI_UNKNOWN_TYPE instead of a result."""

    values: Dict[str, str]
    management_supported: bool = True
    elapsed: float = 0.0


def split_cgi_output(stdout: bytes) -> Tuple[int, str, Tuple[Tuple[str, str], ...], bytes]:
    """Split CGI output into status, reason, headers and body.

    Lines may end in CRLF or LF. Raises RemoteProtocolError when the header
    block has no end, is larger than MAX_HEADER_BYTES or has more than
    MAX_HEADERS lines (a few MB of "a:" lines would otherwise become
    millions of objects), or a line is not a header.
    """
    bounds = _header_end(stdout, MAX_HEADER_BYTES + 4)
    if bounds is None:
        if len(stdout) > MAX_HEADER_BYTES:
            raise RemoteProtocolError(f"CGI header block longer than {MAX_HEADER_BYTES} bytes")
        raise RemoteProtocolError(
            f"CGI output without the blank line that ends its headers ({len(stdout)} bytes: {stdout[:40]!r})"
        )
    head, body = stdout[: bounds[0]], stdout[bounds[1] :]
    lines = head.decode("latin-1").split("\n") if head else []
    if len(lines) > MAX_HEADERS:
        raise RemoteProtocolError(f"more than {MAX_HEADERS} CGI header lines")
    headers: List[Tuple[str, str]] = []
    status: Optional[str] = None
    location = False
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]  # noqa: PLW2901 - the CR of a CRLF line end
        name, colon, value = line.partition(":")
        if not colon or not name or name.strip() != name:
            raise RemoteProtocolError(f"malformed CGI header line {line[:60]!r}")
        value = value.strip()
        headers.append((name, value))
        lowered = name.lower()
        if lowered == "status" and status is None:
            status = value
        elif lowered == "location":
            location = True
    code, reason = _status_of(status, location)
    return code, reason, tuple(headers), body


def _header_end(data: bytes, limit: int) -> Optional[Tuple[int, int]]:
    """Where the blank line after the headers starts and ends (as the
    pattern ``\r?\n\r?\n`` would match it), within ``limit`` bytes."""
    lf_lf, lf_crlf = data.find(b"\n\n", 0, limit), data.find(b"\n\r\n", 0, limit)
    if lf_lf < 0 and lf_crlf < 0:
        return None
    if lf_crlf < 0 or 0 <= lf_lf < lf_crlf:
        first, end = lf_lf, lf_lf + 2
    else:
        first, end = lf_crlf, lf_crlf + 3
    start = first - 1 if first and data[first - 1] == 13 else first
    return start, end


def _status_of(status: Optional[str], location: bool) -> Tuple[int, str]:
    """The first Status: header decides; a Location: alone means 302."""
    if status is not None:
        match = re.match(_STATUS, status)
        if match is None:
            raise RemoteProtocolError(f"malformed CGI Status header {status[:60]!r}")
        return int(match.group(1)), match.group(2) or ""
    if location:
        return 302, "Found"
    return 200, "OK"
