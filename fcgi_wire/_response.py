"""What a request gives back: the CGI response (RFC 3875 section 6) parsed
from FCGI_STDOUT, plus what FastCGI itself reported."""

from __future__ import annotations

import re

from ._spec import ProtocolStatus
from ._values import TYPE_CHECKING, Value
from .errors import RemoteProtocolError

if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

_STATUS = re.compile(r"(\d{3})(?:[ \t]+(.*))?\Z")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


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
    block has no end or a line is not a header.
    """
    end = _HEADER_END.search(stdout)
    if end is None:
        raise RemoteProtocolError(
            f"CGI output without the blank line that ends its headers ({len(stdout)} bytes: {stdout[:40]!r})"
        )
    head, body = stdout[: end.start()], stdout[end.end() :]
    headers: List[Tuple[str, str]] = []
    for raw in re.split(rb"\r?\n", head) if head else []:
        line = raw.decode("latin-1")
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise RemoteProtocolError(f"malformed CGI header line {line[:60]!r}")
        headers.append((name, value.strip()))
    status, reason = _status_of(headers)
    return status, reason, tuple(headers), body


def _status_of(headers: List[Tuple[str, str]]) -> Tuple[int, str]:
    names = {name.lower(): value for name, value in reversed(headers)}
    if "status" in names:
        match = _STATUS.match(names["status"])
        if match is None:
            raise RemoteProtocolError(f"malformed CGI Status header {names['status'][:60]!r}")
        return int(match.group(1)), match.group(2) or ""
    if "location" in names:
        return 302, "Found"
    return 200, "OK"
