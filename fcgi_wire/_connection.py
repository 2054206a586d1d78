"""The client side of one FastCGI connection, with no I/O.

    conn = Connection()
    wire = conn.send(BeginRequest()) + conn.send(Params(...)) + conn.send(Stdin())
    ... write ``wire`` to the peer ...
    while not conn.done:
        event = conn.next_event()
        if event is NEED_DATA:
            conn.receive_data(<bytes read>)     # b"" means end of input
        ...

Every violation by the peer raises RemoteProtocolError (or ConnectionClosed
when the peer hangs up early) and leaves the connection in the ERROR state.
"""

from __future__ import annotations

import enum

from ._events import (
    CLOSED,
    NEED_DATA,
    AbortRequest,
    BeginRequest,
    EndRequest,
    Event,
    GetValues,
    Params,
    Stderr,
    Stdin,
    Stdout,
    UnknownType,
    ValuesResult,
)
from ._pairs import decode_pairs, encode_pairs
from ._records import Record, RecordDecoder, encode_record, encode_stream
from ._spec import (
    BEGIN_REQUEST_BODY,
    CLIENT_RECORD_TYPES,
    END_REQUEST_BODY,
    FCGI_KEEP_CONN,
    MANAGEMENT_RECORD_TYPES,
    NULL_REQUEST_ID,
    UNKNOWN_TYPE_BODY,
    ProtocolStatus,
    RecordType,
)
from ._values import TYPE_CHECKING
from .errors import (
    ConnectionClosed,
    FastCGIError,
    LocalProtocolError,
    RemoteProtocolError,
    ReplyTooLarge,
)

if TYPE_CHECKING:
    from typing import Optional, Type, Union

    Incoming = Union[Event, Type[NEED_DATA], Type[CLOSED]]

#: Room for the JSON status page of a pool with 10,000 workers.
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024

#: How many of the first bytes received a connection keeps for diagnosis.
HEAD_BYTES = 64

#: Record types by number: a dict lookup, cheaper per record than calling
#: the enum (and no exception for the numbers it does not know).
_RECORD_TYPES = {int(kind): kind for kind in RecordType}
_PROTOCOL_STATUSES = {int(status): status for status in ProtocolStatus}


class State(enum.Enum):
    IDLE = "idle"  # nothing sent yet, or everything answered
    AWAITING = "awaiting"  # a reply is outstanding
    ERROR = "error"


class Connection:
    """A client connection: ``send`` encodes, ``receive_data`` and
    ``next_event`` decode and check what the server says."""

    def __init__(self, request_id: int = 1, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        if not 1 <= request_id <= 0xFFFF:
            raise LocalProtocolError(f"request id {request_id} must be 1..65535")
        self.request_id = request_id
        self.max_reply_bytes = max_reply_bytes
        self.received = 0
        #: The first bytes the peer sent, kept for diagnosis (a banner, an
        #: HTTP status line): at most HEAD_BYTES.
        self.head = b""
        self._decoder = RecordDecoder()
        self._values_pending = 0
        self._request_open = False
        self._request_sent = False
        self._error: Optional[FastCGIError] = None

    @property
    def state(self) -> State:
        if self._error is not None:
            return State.ERROR
        if self._values_pending or self._request_open:
            return State.AWAITING
        return State.IDLE

    @property
    def done(self) -> bool:
        """True once every record we sent has its answer."""
        return self.state is State.IDLE

    # --- outgoing -----------------------------------------------------------

    def send(self, event: Event) -> bytes:
        rid = self.request_id
        if isinstance(event, GetValues):
            self._values_pending += 1
            content = encode_pairs((name, b"") for name in event.names)
            # Never zero padding: libfcgi (fcgiwrap, cgi-fcgi apps) checks for
            # an empty read buffer before it checks for the end of a record,
            # so a management record that ends exactly where its read() ended
            # leaves it blocked in the next read() instead of answering. Any
            # byte after the content, its own padding included, avoids that.
            padding = -len(content) % 8 or 8
            return encode_record(RecordType.GET_VALUES, NULL_REQUEST_ID, content, padding=padding)
        if isinstance(event, BeginRequest):
            if self._request_sent:
                raise LocalProtocolError("one request per connection: a request was already begun")
            self._request_sent = self._request_open = True
            flags = FCGI_KEEP_CONN if event.keep_conn else 0
            body = BEGIN_REQUEST_BODY.pack(int(event.role), flags)
            return encode_record(RecordType.BEGIN_REQUEST, rid, body)
        if not self._request_open:
            raise LocalProtocolError(f"{type(event).__name__} needs a BeginRequest first")
        if isinstance(event, Params):
            return encode_stream(RecordType.PARAMS, rid, encode_pairs(event.pairs))
        if isinstance(event, Stdin):
            return encode_stream(RecordType.STDIN, rid, event.data)
        if isinstance(event, AbortRequest):
            return encode_record(RecordType.ABORT_REQUEST, rid)
        raise LocalProtocolError(f"cannot send {event!r}")

    # --- incoming -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means it closed."""
        if not data:
            self._decoder.feed_eof()
            return
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.received += len(data)
        if self.received > self.max_reply_bytes:
            self._error = ReplyTooLarge(f"reply larger than the cap of {self.max_reply_bytes} bytes")
            raise self._error
        self._decoder.feed(data)

    def next_event(self) -> Incoming:
        if self._error is not None:
            raise self._error
        try:
            while True:
                record = self._decoder.next_record()
                if record is None:
                    return self._at_end_of_data()
                event = self._interpret(record)
                if event is not None:
                    return event
        except FastCGIError as exc:
            self._error = exc
            raise

    def _at_end_of_data(self) -> Incoming:
        if not self._decoder.at_eof:
            return NEED_DATA
        if self.done:
            return CLOSED
        raise ConnectionClosed(
            f"connection closed before the reply was complete ({self.received} bytes received)"
        )

    def _interpret(self, record: Record) -> Optional[Event]:
        """The event a record stands for; None for the empty record that ends
        a stream, which carries nothing to deliver."""
        kind = _RECORD_TYPES.get(record.type)
        if kind is None:
            raise RemoteProtocolError(f"unknown record type {record.type}")
        if kind in CLIENT_RECORD_TYPES:
            raise RemoteProtocolError(f"server sent {kind.label}, a record only clients send")
        if kind in MANAGEMENT_RECORD_TYPES:
            return self._management(record, kind.label)
        if record.request_id != self.request_id:
            raise RemoteProtocolError(
                f"{kind.label} record for request id {record.request_id}, expected {self.request_id}"
            )
        if not self._request_open:
            raise RemoteProtocolError(f"{kind.label} record for a request that is not open")
        if kind is RecordType.STDOUT:
            return Stdout(record.content) if record.content else None
        if kind is RecordType.STDERR:
            return Stderr(record.content) if record.content else None
        return self._end_request(record)

    def _management(self, record: Record, label: str) -> Event:
        if record.request_id != NULL_REQUEST_ID:
            raise RemoteProtocolError(
                f"{label} record with request id {record.request_id} (management records use 0)"
            )
        if not self._values_pending:
            raise RemoteProtocolError(f"unsolicited {label} record")
        if record.type == RecordType.UNKNOWN_TYPE:
            if len(record.content) != UNKNOWN_TYPE_BODY.size:
                raise RemoteProtocolError(
                    f"{label} body of {len(record.content)} bytes, expected {UNKNOWN_TYPE_BODY.size}"
                )
            self._values_pending -= 1
            return UnknownType(UNKNOWN_TYPE_BODY.unpack(record.content)[0])
        pairs = decode_pairs(record.content)
        self._values_pending -= 1
        # Names and values are ASCII by the spec; latin-1 never fails to decode.
        return ValuesResult({n.decode("latin-1"): v.decode("latin-1") for n, v in pairs})

    def _end_request(self, record: Record) -> EndRequest:
        if len(record.content) != END_REQUEST_BODY.size:
            raise RemoteProtocolError(
                f"FCGI_END_REQUEST body of {len(record.content)} bytes, expected {END_REQUEST_BODY.size}"
            )
        app_status, raw_status = END_REQUEST_BODY.unpack(record.content)
        protocol_status = _PROTOCOL_STATUSES.get(raw_status)
        if protocol_status is None:
            raise RemoteProtocolError(f"FCGI_END_REQUEST with unknown protocolStatus {raw_status}")
        self._request_open = False
        return EndRequest(app_status, protocol_status)
