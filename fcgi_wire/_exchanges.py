"""The two exchanges a client needs, still without I/O: what to send, and how
the events that come back add up to a result.

A transport writes ``outgoing``, then feeds ``connection`` and passes each
event to ``handle`` until it returns a result.
"""

from __future__ import annotations

from ._connection import (
    DEFAULT_MAX_REPLY_BYTES,
    Connection,
    _bad_request_id,
    _read_records,
    _request_head,
    _stdin_parts,
)
from ._events import (
    CLOSED,
    NEED_DATA,
    EndRequest,
    Event,
    GetValues,
    Stderr,
    Stdout,
    UnknownType,
    ValuesResult,
)
from ._response import _RECENT, Response, ValuesReply, _promote, _split_pieces, split_cgi_output
from ._spec import MANAGEMENT_NAMES, ProtocolStatus, Role
from ._values import TYPE_CHECKING
from .errors import REFUSALS, ConnectionClosed

if TYPE_CHECKING:
    from typing import Iterable, List, Optional

    from ._connection import ParamsLike

__all__ = ["ParamsLike", "ResponderQuery", "ValuesQuery"]

_COMPLETE = ProtocolStatus.REQUEST_COMPLETE


class ValuesQuery:
    """FCGI_GET_VALUES on request id 0. PHP-FPM keeps the connection open
    after answering, so the result record itself ends the exchange."""

    _parts: Optional[List[bytes]] = None  # outgoing is whole (see ResponderQuery)

    def __init__(
        self, names: Iterable[str] = MANAGEMENT_NAMES, *, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ):
        self.connection = Connection(max_reply_bytes=max_reply_bytes)
        self.outgoing = self._outgoing = self.connection.send(GetValues(tuple(names)))

    def receive_data(self, data: bytes, elapsed: float = 0.0) -> Optional[ValuesReply]:
        """Feed bytes read from the server (``b""`` when it closed); the
        reply once they complete it, else None."""
        conn = self.connection
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return None
            if event is CLOSED:  # pragma: no cover - the connection raises first: a reply is due
                raise ConnectionClosed("connection closed")
            result = self.handle(event, elapsed)  # type: ignore[arg-type]
            if result is not None:
                return result

    def handle(self, event: Event, elapsed: float = 0.0) -> Optional[ValuesReply]:
        """The reply once ``event`` completes it, else None; ``elapsed`` is
        what the transport measured, for the reply."""
        if isinstance(event, ValuesResult):
            return ValuesReply(dict(event.values), True, elapsed)
        if isinstance(event, UnknownType):
            return ValuesReply({}, False, elapsed)
        return None  # pragma: no cover - the connection only yields the two above here


class ResponderQuery:
    """A complete FCGI_RESPONDER request: BEGIN_REQUEST, PARAMS and STDIN
    streams, then STDOUT and STDERR until END_REQUEST."""

    __slots__ = (
        "_connection",
        "_max_reply_bytes",
        "_outgoing",
        "_parts",
        "_request_id",
        "_stderr",
        "_stdout",
        "_whole",
    )

    def __init__(
        self,
        params: ParamsLike,
        stdin: bytes = b"",
        *,
        role: Role = Role.RESPONDER,
        request_id: int = 1,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        keep_conn: bool = False,
    ):
        self._begin(params, stdin, role, request_id, max_reply_bytes, keep_conn)

    def _begin(  # noqa: PLR0917 - positional: the blocking transport's way in (request())
        self,
        params: ParamsLike,
        stdin: bytes,
        role: Role,
        request_id: int,
        max_reply_bytes: int,
        keep_conn: bool,
    ) -> None:
        if not 1 <= request_id <= 0xFFFF:
            _bad_request_id(request_id)
        self._request_id = request_id
        self._max_reply_bytes = max_reply_bytes
        self._connection: Optional[Connection] = None
        self._whole: Optional[bytes] = None
        head = _request_head(params, request_id, role, keep_conn)
        # With a body, the request stays in pieces until someone asks for it
        # whole: the blocking transport sends them as they are (sendmsg), so
        # a large body is never copied into the request.
        self._parts: Optional[List[bytes]] = _stdin_parts(head[0], request_id, stdin) if stdin else None
        self._outgoing: Optional[bytes] = None if stdin else head[1]
        self._stdout: List[bytes] = []
        self._stderr: List[bytes] = []

    @property
    def outgoing(self) -> bytes:
        """The whole request, to send."""
        outgoing = self._outgoing
        if outgoing is None:
            outgoing = self._outgoing = b"".join(self._parts or ())
        return outgoing

    @property
    def connection(self) -> Connection:
        """The connection this request went out on, as the bytes fed so far
        left it. Made when first needed: a reply that comes whole in its
        first chunk, as most do, needs none (receive_data)."""
        conn = self._connection
        if conn is None:
            conn = self._connection = Connection(self._request_id, self._max_reply_bytes)
            conn._request_sent = conn._request_open = True
            if self._whole is not None:  # read already, without it: read it again
                conn._take_reply(self._whole, [], [])
        return conn

    def receive_data(self, data: bytes, elapsed: float = 0.0) -> Optional[Response]:
        """Feed bytes read from the server (``b""`` when it closed); the
        response once they complete it, else None. The same checks and
        errors as feeding ``connection`` and passing its events to
        ``handle``, with no event built per record."""
        conn = self._connection
        if conn is not None:
            end = conn._take_reply(data, self._stdout, self._stderr)
        elif data and len(data) <= self._max_reply_bytes:
            # The first bytes: what Connection._take_reply would do with
            # them on a connection that has read nothing yet.
            pos = _read_records(data, self._request_id, self._stdout, self._stderr)
            if pos < 0:
                self._whole = data
                return self._response(0, _COMPLETE, elapsed)
            conn = self.connection
            conn._count(data)
            end = conn._take_rest(data, pos, self._stdout, self._stderr)
        else:
            end = self.connection._take_reply(data, self._stdout, self._stderr)
        if end is None:
            return None
        return self._response(end[0], end[1], elapsed)

    def handle(self, event: Event, elapsed: float = 0.0) -> Optional[Response]:
        """The response once ``event`` completes it, else None; ``elapsed``
        is what the transport measured, for the response."""
        kind = type(event)
        if kind is Stdout:
            self._stdout.append(event.data)  # type: ignore[attr-defined]
        elif kind is Stderr:
            self._stderr.append(event.data)  # type: ignore[attr-defined]
        elif kind is EndRequest:
            return self._response(event.app_status, event.protocol_status, elapsed)  # type: ignore[attr-defined]
        return None

    def _response(self, app_status: int, protocol_status: ProtocolStatus, elapsed: float) -> Response:
        if protocol_status is not _COMPLETE:
            raise REFUSALS[protocol_status]()
        stdout = self._stdout
        if len(stdout) == 1:
            first = stdout[0]
            for entry in _RECENT:  # split_cgi_output's first look, without the call
                if first.startswith(entry[0]):
                    if entry is not _RECENT[0]:
                        _promote(entry)
                    status, reason, headers = entry[1]
                    body = first[len(entry[0]) :]
                    break
            else:
                status, reason, headers, body = split_cgi_output(first)
        else:
            status, reason, headers, body = _split_pieces(stdout)
        stderr = b"".join(self._stderr) if self._stderr else b""
        return Response._build(status, reason, headers, body, stderr, app_status, protocol_status, elapsed)
