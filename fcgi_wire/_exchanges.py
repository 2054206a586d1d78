"""The two exchanges a client needs, still without I/O: what to send, and how
the events that come back add up to a result.

A transport writes ``outgoing``, then feeds ``connection`` and passes each
event to ``handle`` until it returns a result.
"""

from __future__ import annotations

from ._connection import DEFAULT_MAX_REPLY_BYTES, Connection
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
from ._response import Response, ValuesReply, _split_pieces, split_cgi_output
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

    def __init__(
        self, names: Iterable[str] = MANAGEMENT_NAMES, *, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ):
        self.connection = Connection(max_reply_bytes=max_reply_bytes)
        self.outgoing = self.connection.send(GetValues(tuple(names)))

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
        self.connection = conn = Connection(request_id, max_reply_bytes)
        self.outgoing = conn._send_request(params, stdin, role, keep_conn)
        self._stdout: List[bytes] = []
        self._stderr: List[bytes] = []

    def receive_data(self, data: bytes, elapsed: float = 0.0) -> Optional[Response]:
        """Feed bytes read from the server (``b""`` when it closed); the
        response once they complete it, else None. The same checks and
        errors as feeding ``connection`` and passing its events to
        ``handle``, with no event built per record."""
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
        status, reason, headers, body = (
            split_cgi_output(stdout[0]) if len(stdout) == 1 else _split_pieces(stdout)
        )
        stderr = b"".join(self._stderr)
        # Positional, in field order: the fast way to build a Value.
        return Response(status, reason, headers, body, stderr, app_status, protocol_status, elapsed)
