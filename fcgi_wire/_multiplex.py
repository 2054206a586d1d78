"""Several exchanges on one connection that stays open (FCGI_KEEP_CONN),
with no I/O: the codec under ``fcgi_wire.KeptConnection``.

    mux = Multiplexer()
    request_id, wire = mux.start(params)        # a free request id each
    ... write ``wire`` (several at once if the server multiplexes) ...
    for request_id, outcome in mux.receive_data(<bytes read>):
        ...   # a Response, a ValuesReply, or the RequestRefused for that id

Records are routed by request id to the exchange that owns it, each checked
and capped as on a connection of its own. Anything else the server sends
(a record for an id that is not open, a management record nobody asked
for) is a RemoteProtocolError, after which the multiplexer is unusable: the
connection must be closed.
"""

from __future__ import annotations

from ._connection import DEFAULT_MAX_REPLY_BYTES
from ._exchanges import ResponderQuery, ValuesQuery
from ._records import RecordDecoder, type_label
from ._spec import MANAGEMENT_NAMES, NULL_REQUEST_ID, Role
from ._values import TYPE_CHECKING
from .errors import (
    ConnectionClosed,
    FastCGIError,
    LocalProtocolError,
    RemoteProtocolError,
    RequestRefused,
)

if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple, Union

    from ._connection import ParamsLike
    from ._response import Response, ValuesReply

    Outcome = Union[Response, ValuesReply, RequestRefused]

_MAX_REQUEST_ID = 0xFFFF


class Multiplexer:
    """The client side of a kept connection: request ids handed out, replies
    routed back to their exchanges."""

    def __init__(self, max_in_flight: int = _MAX_REQUEST_ID) -> None:
        if not 1 <= max_in_flight <= _MAX_REQUEST_ID:
            raise LocalProtocolError(f"max_in_flight {max_in_flight} must be 1..{_MAX_REQUEST_ID}")
        self.max_in_flight = max_in_flight
        self.received = 0
        self._head = b""
        self._decoder = RecordDecoder()
        self._open: Dict[int, ResponderQuery] = {}
        self._values: List[ValuesQuery] = []  # answered in the order asked
        self._next_id = 1
        self._error: Optional[FastCGIError] = None

    @property
    def head(self) -> bytes:
        """The first bytes the server sent on this connection (at most 64)."""
        return self._head

    @property
    def in_flight(self) -> int:
        """Exchanges sent and not yet answered."""
        return len(self._open) + len(self._values)

    @property
    def broken(self) -> bool:
        """True after an error: the connection can carry nothing more."""
        return self._error is not None

    def start(
        self,
        params: ParamsLike,
        stdin: bytes = b"",
        *,
        role: Role = Role.RESPONDER,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> Tuple[int, bytes]:
        """A responder request on a free request id, with FCGI_KEEP_CONN:
        the id and the bytes to send."""
        if self._error is not None:
            raise self._error
        if len(self._open) >= self.max_in_flight:
            raise LocalProtocolError(f"{len(self._open)} requests in flight already, the most allowed")
        request_id = self._next_id
        while request_id in self._open:
            request_id = request_id % _MAX_REQUEST_ID + 1
        self._next_id = request_id % _MAX_REQUEST_ID + 1
        query = ResponderQuery(
            params, stdin, role=role, request_id=request_id, max_reply_bytes=max_reply_bytes, keep_conn=True
        )
        self._open[request_id] = query
        return request_id, query.outgoing

    def start_values(
        self, names: Iterable[str] = MANAGEMENT_NAMES, *, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ) -> bytes:
        """FCGI_GET_VALUES (on request id 0): the bytes to send. Its reply
        comes out of receive_data() under request id 0."""
        if self._error is not None:
            raise self._error
        query = ValuesQuery(names, max_reply_bytes=max_reply_bytes)
        self._values.append(query)
        return query.outgoing

    def receive_data(self, data: bytes, elapsed: float = 0.0) -> List[Tuple[int, Outcome]]:
        """Feed bytes read from the server (``b""`` when it closed); the
        exchanges they complete, as (request id, outcome) in the order their
        last record came. A refusal (FCGI_END_REQUEST with another
        protocolStatus) is the outcome of its own request only."""
        if self._error is not None:
            raise self._error
        if len(self._head) < 64:
            self._head += data[: 64 - len(self._head)]
        self.received += len(data)
        decoder = self._decoder
        if data:
            decoder.feed(data)
        else:
            decoder.feed_eof()
        done: List[Tuple[int, Outcome]] = []
        try:
            while True:
                record = decoder._next()
                if record is None:
                    if decoder.at_eof and self.in_flight:
                        raise ConnectionClosed(
                            f"connection closed with {self.in_flight} exchanges unanswered "
                            f"({self.received} bytes received)"
                        )
                    return done
                outcome = self._route(*record, elapsed)
                if outcome is not None:
                    done.append(outcome)
        except FastCGIError as exc:
            self._error = exc
            raise

    def _route(
        self, record_type: int, request_id: int, content: bytes, elapsed: float
    ) -> Optional[Tuple[int, Outcome]]:
        if request_id == NULL_REQUEST_ID:
            if not self._values:
                raise RemoteProtocolError(
                    f"{type_label(record_type)} record on request id 0 with no FCGI_GET_VALUES outstanding"
                )
            values = self._values[0]
            event = values.connection._receive_record(record_type, request_id, content)
            reply = values.handle(event, elapsed) if event is not None else None
            if reply is None:  # pragma: no cover - a management record always answers
                return None
            self._values.pop(0)
            return NULL_REQUEST_ID, reply
        query = self._open.get(request_id)
        if query is None:
            raise RemoteProtocolError(
                f"{type_label(record_type)} record for request id {request_id}, which is not open"
            )
        event = query.connection._receive_record(record_type, request_id, content)
        if event is None:
            return None
        try:
            response = query.handle(event, elapsed)
        except RequestRefused as refused:
            del self._open[request_id]
            return request_id, refused
        if response is None:
            return None
        del self._open[request_id]
        return request_id, response
