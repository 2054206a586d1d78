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
    for entry in _RECENT:
        if stdout.startswith(entry[0]):
            if entry is not _RECENT[0]:
                _promote(entry)
            return (*entry[1], stdout[len(entry[0]) :])
    bounds = _header_end(stdout, MAX_HEADER_BYTES + 4)
    if bounds is None:
        if len(stdout) > MAX_HEADER_BYTES:
            raise RemoteProtocolError(f"CGI header block longer than {MAX_HEADER_BYTES} bytes")
        raise RemoteProtocolError(
            f"CGI output without the blank line that ends its headers ({len(stdout)} bytes: {stdout[:40]!r})"
        )
    return (*_parse_head(stdout, *bounds), stdout[bounds[1] :])


def _split_pieces(pieces: List[bytes]) -> Tuple[int, str, Tuple[Tuple[str, str], ...], bytes]:
    """split_cgi_output(b"".join(pieces)) without joining (and copying) a
    large body twice: when the first piece holds the whole header block,
    the body is the rest of it and the other pieces as they are."""
    if len(pieces) < 2:
        return split_cgi_output(pieces[0] if pieces else b"")
    first = pieces[0]
    for entry in _RECENT:
        if first.startswith(entry[0]):
            if entry is not _RECENT[0]:
                _promote(entry)
            parsed, body_start = entry[1], len(entry[0])
            break
    else:
        bounds = _header_end(first, MAX_HEADER_BYTES + 4)
        if bounds is None:
            return split_cgi_output(b"".join(pieces))
        parsed = _parse_head(first, *bounds)
        body_start = bounds[1]
    rest = pieces[1:]
    if body_start < len(first):
        rest.insert(0, first[body_start:])
    return (*parsed, b"".join(rest))


#: Header blocks lately parsed, blank line included, newest first, with
#: what they said. A server answers a path with the same headers time
#: after time (PHP-FPM's ping and status pages do), and output that starts
#: with a known block has its end in the same place: where the first blank
#: line is depends only on the bytes up to it. Bounded in number and size;
#: the results are immutable.
_RECENT: List[Tuple[bytes, Tuple[int, str, Tuple[Tuple[str, str], ...]]]] = []
_RECENT_COUNT = 4
_RECENT_SIZE = 2048


def _promote(entry: Tuple[bytes, Tuple[int, str, Tuple[Tuple[str, str], ...]]]) -> None:
    """Move a block found in _RECENT to the front, where the next look
    starts: a run of the same request finds it at the first try."""
    try:
        _RECENT.remove(entry)
    except ValueError:  # another thread moved it first
        return
    _RECENT.insert(0, entry)


def _parse_head(stdout: bytes, size: int, end: int) -> Tuple[int, str, Tuple[Tuple[str, str], ...]]:
    """Status, reason and headers of the header block, ``stdout[:size]``,
    whose blank line ends at ``end``; remembered in _RECENT when small."""
    if not size:
        return 200, "OK", ()
    parsed = _parse_head_text(stdout[:size].decode("latin-1"))
    if end <= _RECENT_SIZE:
        _RECENT.insert(0, (stdout[:end], parsed))
        del _RECENT[_RECENT_COUNT:]
    return parsed


def _parse_head_text(text: str) -> Tuple[int, str, Tuple[Tuple[str, str], ...]]:
    """_parse_head on the decoded header block."""
    if "\r" in text:
        # Each line loses the CR of its CRLF end (and the last line a
        # trailing CR), as if split on LF and stripped of one CR.
        text = text.replace("\r\n", "\n")
        if text[-1] == "\r":
            text = text[:-1]
    lines = text.split("\n")
    if len(lines) > MAX_HEADERS:
        raise RemoteProtocolError(f"more than {MAX_HEADERS} CGI header lines")
    headers: List[Tuple[str, str]] = []
    append = headers.append
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name.strip() != name:
            raise RemoteProtocolError(f"malformed CGI header line {line[:60]!r}")
        append((name, value.strip()))
    status: Optional[str] = None
    location = False
    lowered = text.lower()
    if "status" in lowered or "location" in lowered:  # else no need to look at each name
        for name, value in headers:
            lowered = name.lower()
            if lowered == "status":
                if status is None:
                    status = value
            elif lowered == "location":
                location = True
    code, reason = _status_of(status, location)
    return code, reason, tuple(headers)


#: How far the first look for the end of the headers goes: past the header
#: block of nearly every reply, so the search stops there, not at the limit.
_FIRST_LOOK = 1024


def _header_end(data: bytes, limit: int) -> Optional[Tuple[int, int]]:
    """Where the blank line after the headers starts and ends (as the
    pattern ``\r?\n\r?\n`` would match it), within ``limit`` bytes.

    Searched in growing windows, each for LF CR LF and then for LF LF only
    up to where the first hit: the cost follows the header block, not the
    body after it (two searches to the limit cost about 50 µs on a 64 KiB
    reply, more than the rest of a request).
    """
    low, high = 0, min(_FIRST_LOOK, limit)
    while True:
        lf_crlf = data.find(b"\n\r\n", low, high)
        lf_lf = data.find(b"\n\n", low, high if lf_crlf < 0 else lf_crlf + 1)
        if lf_lf >= 0:
            first, end = lf_lf, lf_lf + 2
            break
        if lf_crlf >= 0:
            first, end = lf_crlf, lf_crlf + 3
            break
        if high >= limit or high >= len(data):
            return None
        # The next window overlaps this one by two bytes: a match cut at the
        # edge lies whole in the next.
        low, high = high - 2, min(high * 8, limit)
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
