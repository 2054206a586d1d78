"""HTTP/1.1 request heads, for serve's transport: where a head ends in
bytes that come in pieces, what it says, and what is refused (with the
status to answer). No I/O here; the loop in ``http`` feeds it.

Why not http.server's parsing: its header parser (email.feedparser) cost
more than all the rest of a /healthz. Why not h11, the well-kept sans-I/O
parser we would rather use: a keep-alive GET and its answer cost 81 µs of
CPU through h11 0.16 and 9 µs here (timeit, same machine, 2026-12-02),
where serve's whole /healthz costs about 90 µs; the /ping latency target
would not hold.
The limits are http.server's: a head line is 64 KiB at most (a longer
request line is answered 414, a longer header line 431), a head has 100
header lines at most (431). Stricter than http.server where it mattered:
a header line that one parser would skip and another read (a space
before the colon, a folded line, a control character) is refused, never
taken as the end of the head.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

#: A head line is this long at most, its line end included; a head has
#: this many header lines at most (http.server's limits).
MAX_LINE = 65536
MAX_HEADERS = 100

#: METHOD TARGET VERSION: printable ASCII, one space between (RFC 9112).
_REQUEST_LINE = re.compile(r"[!-~]+ ([!-~]+) [!-~]+\Z")
_VERSION = re.compile(r"HTTP/([0-9]{1,10})\.([0-9]{1,10})\Z")
#: A request line that passes both at once (HTTP/1.0 and 1.1 alike).
_SIMPLE_LINE = re.compile(r"([!-~]+) (/[!-~]*) HTTP/(1)\.([0-9])\Z")
#: A header line: a token, a colon right after it, a value of no control
#: character but HTAB (RFC 9110 5.1, 5.5).
_HEADER_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*\Z")


def line_problem(line: str) -> Optional[str]:
    """Why a request line is refused, or None: a target that urlsplit
    would raise on ("http://[x"), control characters and HTTP/0.9 (which
    has no status line) are refused, as is any target but a path."""
    match = _REQUEST_LINE.match(line)
    if match is None:
        return "a request line is METHOD /PATH HTTP/1.1, in printable ASCII"
    if not match.group(1).startswith("/"):
        return "the request target must be a path, starting with /"
    return None


class Refused(Exception):
    """A request answered with an error status, and its connection closed."""

    def __init__(self, status: int, text: str, method: Optional[str] = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        #: The request's method, when its line was read (HEAD: no body).
        self.method = method


class RequestHeaders:
    """A request's header fields, by name in any case, in their order."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[Tuple[str, str]] = ()) -> None:
        self._fields: Dict[str, List[str]] = {}
        for name, value in fields:
            self._fields.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: Any = None) -> Any:
        """The first value of the field, else ``default``."""
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> List[str]:
        return list(self._fields.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


class Request:
    """A request head, parsed."""

    __slots__ = ("headers", "keep_alive", "method", "target", "version")

    def __init__(
        self, method: str, target: str, version: Tuple[int, int], headers: RequestHeaders, keep_alive: bool
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive


class HeadScanner:
    """Where a request head ends, in bytes that come in pieces: each line
    is held to the limits once, as it comes."""

    __slots__ = ("lines", "position")

    def __init__(self) -> None:
        self.position = 0  # the start of the first line not seen whole yet
        self.lines = 0  # the lines seen whole, the request line included

    def end(self, data: Union[bytes, bytearray]) -> int:
        """The head's length in ``data`` (its empty line included), or 0
        while it is incomplete; Refused past a limit. An empty first line
        is a head of its own (a request line that parse_head refuses)."""
        position = self.position
        while True:
            end = data.find(b"\n", position)
            if end < 0:
                self.position = position
                if len(data) - position >= MAX_LINE:
                    raise _too_long(self.lines)
                return 0
            if end + 1 - position > MAX_LINE:
                raise _too_long(self.lines)
            if end == position or (end == position + 1 and data[position] == 13):  # b"\n", b"\r\n"
                return end + 1
            self.lines += 1
            if self.lines > MAX_HEADERS + 1:
                raise Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            position = end + 1


def _too_long(lines: int) -> Refused:
    if lines == 0:
        return Refused(HTTPStatus.REQUEST_URI_TOO_LONG, HTTPStatus.REQUEST_URI_TOO_LONG.phrase)
    return Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")


def parse_head(head: bytes) -> Request:
    """A request head (as HeadScanner found it) parsed, or Refused."""
    lines = head.decode("iso-8859-1").split("\n")
    line = lines[0].rstrip("\r\n")
    simple = _SIMPLE_LINE.match(line)
    if simple is not None:  # most requests: no need to look closer
        method, target, major, minor = simple.groups()
        number = int(major), int(minor)
    else:
        method, target, number = _request_line(line)
    fields = [field.rstrip("\r") for field in lines[1:-2]]  # the last two: the empty line, and after it
    if len(fields) > MAX_HEADERS:
        raise Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", method)
    pairs = []
    for field in fields:
        match = _HEADER_LINE.match(field)
        if match is None:
            raise Refused(
                HTTPStatus.BAD_REQUEST, "a header line is Name: value, with no control character", method
            )
        pairs.append((match.group(1), match.group(2)))
    headers = RequestHeaders(pairs)
    keep_alive = number >= (1, 1)
    if "Connection" in headers:
        tokens = {token.strip().lower() for token in headers.get("Connection").split(",")}
        keep_alive = "close" not in tokens and (keep_alive or "keep-alive" in tokens)
    return Request(method, target, number, headers, keep_alive)


def _request_line(line: str) -> Tuple[str, str, Tuple[int, int]]:
    """(method, target, version) of a request line, or Refused saying why not."""
    problem = line_problem(line)
    if problem is not None:
        raise Refused(HTTPStatus.BAD_REQUEST, problem)
    method, target, version_text = line.split(" ")
    version = _VERSION.match(version_text)
    if version is None:
        raise Refused(HTTPStatus.BAD_REQUEST, f"Bad request version ({version_text[:20]!r})", method)
    number = int(version.group(1)), int(version.group(2))
    if number >= (2, 0):
        raise Refused(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({version_text})", method)
    return method, target, number


def body_problem(headers: RequestHeaders) -> Optional[str]:
    """No body is read: one would be parsed as the next request, and a
    proxy that reuses the connection would get answers out of step."""
    if any(value.strip() != "0" for value in headers.get_all("Content-Length")):
        return "no request body is accepted: Content-Length must be 0"
    if "Transfer-Encoding" in headers:
        return "no request body is accepted: no Transfer-Encoding"
    if "Expect" in headers:
        return "no request body is accepted: no Expect"
    return None
