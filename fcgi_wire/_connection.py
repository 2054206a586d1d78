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
from collections.abc import Mapping

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
from ._records import RecordDecoder, _pack_header, _stream_parts, encode_record, encode_stream
from ._spec import (
    BEGIN_REQUEST_BODY,
    CLIENT_RECORD_TYPES,
    END_REQUEST_BODY,
    FCGI_KEEP_CONN,
    HEADER,
    HEADER_SIZE,
    MANAGEMENT_RECORD_TYPES,
    NULL_REQUEST_ID,
    UNKNOWN_TYPE_BODY,
    VERSION,
    ProtocolStatus,
    RecordType,
    Role,
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
    from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, Union

    from ._pairs import Text

    Incoming = Union[Event, Type[NEED_DATA], Type[CLOSED]]

    #: Params as a mapping (a plain Dict[str, str] included) or as pairs.
    ParamsLike = Union[
        Mapping[str, str], Mapping[bytes, bytes], Mapping[Text, Text], Iterable[Tuple[Text, Text]]
    ]

#: Room for the JSON status page of a pool with 10,000 workers.
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024

#: How many of the first bytes received a connection keeps for diagnosis.
HEAD_BYTES = 64

#: Record types by number: a dict lookup, cheaper per record than calling
#: the enum (and no exception for the numbers it does not know).
_RECORD_TYPES = {int(kind): kind for kind in RecordType}
_PROTOCOL_STATUSES = {int(status): status for status in ProtocolStatus}
_BEGIN_REQUEST, _END_REQUEST = int(RecordType.BEGIN_REQUEST), int(RecordType.END_REQUEST)
_unpack_header = HEADER.unpack_from
_COMPLETE = ProtocolStatus.REQUEST_COMPLETE
_END_RECORD_SIZE = HEADER_SIZE + END_REQUEST_BODY.size
#: FCGI_END_REQUEST with appStatus 0 and REQUEST_COMPLETE, by request id,
#: up to its three reserved bytes.
_END_COMPLETE: Dict[int, bytes] = {}


def _end_complete(request_id: int) -> bytes:
    record = _END_COMPLETE.get(request_id)
    if record is None:
        record = _pack_header(VERSION, _END_REQUEST, request_id, END_REQUEST_BODY.size, 0)
        record += END_REQUEST_BODY.pack(0, _COMPLETE)[:5]
        if len(_END_COMPLETE) >= 1024:
            _END_COMPLETE.clear()
        _END_COMPLETE[request_id] = record
    return record


_PARAMS, _STDIN = int(RecordType.PARAMS), int(RecordType.STDIN)
_STDOUT, _STDERR = int(RecordType.STDOUT), int(RecordType.STDERR)


#: The start of requests already encoded: BEGIN_REQUEST and the whole
#: PARAMS stream, and that plus the empty STDIN, by (request id, role,
#: keep_conn, params). A monitor sends the same few requests over and over;
#: bounded in number and size.
_REQUEST_HEADS: Dict[Tuple[int, Role, bool, Tuple[Tuple[Text, Text], ...]], Tuple[bytes, bytes]] = {}
_REMEMBERED = 64
_MAX_REMEMBERED = 4096
#: The same for params in a dict, by the dict's id: (the dict, a copy of it
#: as it was, the head).
_SEEN_DICTS: Dict[Tuple[int, int, Role, bool], Tuple[Dict[Any, Any], Dict[Any, Any], Tuple[bytes, bytes]]]
_SEEN_DICTS = {}


def _encode_request(
    request_id: int, role: Role, keep_conn: bool, pairs: Iterable[Tuple[Text, Text]], stdin: bytes
) -> Tuple[bytes, Tuple[bytes, bytes]]:
    """The whole request, and its head (see _REQUEST_HEADS)."""
    parts = [
        _pack_header(VERSION, _BEGIN_REQUEST, request_id, 8, 0),
        BEGIN_REQUEST_BODY.pack(int(role), FCGI_KEEP_CONN if keep_conn else 0),
    ]
    _stream_parts(parts, _PARAMS, request_id, encode_pairs(pairs))
    head = b"".join(parts)
    end_stdin = _pack_header(VERSION, _STDIN, request_id, 0, 0)
    return head + _stdin_records(request_id, stdin) if stdin else head + end_stdin, (head, head + end_stdin)


def _stdin_records(request_id: int, stdin: bytes) -> bytes:
    parts: List[bytes] = []
    _stream_parts(parts, _STDIN, request_id, stdin)
    return b"".join(parts)


def _with_stdin(head: bytes, request_id: int, stdin: bytes) -> bytes:
    """``head`` and the STDIN stream, joined once (a large body is copied
    once, not twice)."""
    parts = [head]
    _stream_parts(parts, _STDIN, request_id, stdin)
    return b"".join(parts)


class State(enum.Enum):
    IDLE = "idle"  # nothing sent yet, or everything answered
    AWAITING = "awaiting"  # a reply is outstanding
    ERROR = "error"


class Connection:
    """A client connection: ``send`` encodes, ``receive_data`` and
    ``next_event`` decode and check what the server says."""

    __slots__ = (
        "_decoder",
        "_error",
        "_head",
        "_request_open",
        "_request_sent",
        "_values_pending",
        "max_reply_bytes",
        "received",
        "request_id",
    )

    def __init__(self, request_id: int = 1, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        if not 1 <= request_id <= 0xFFFF:
            raise LocalProtocolError(f"request id {request_id} must be 1..65535")
        self.request_id = request_id
        self.max_reply_bytes = max_reply_bytes
        self.received = 0
        self._head: List[bytes] = []  # the first chunks, until they hold HEAD_BYTES
        self._decoder = RecordDecoder()
        self._values_pending = 0
        self._request_open = False
        self._request_sent = False
        self._error: Optional[FastCGIError] = None

    @property
    def head(self) -> bytes:
        """The first bytes the peer sent, kept for diagnosis (a banner, an
        HTTP status line): at most HEAD_BYTES."""
        return b"".join(self._head)[:HEAD_BYTES]

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
            self._begin()
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

    def send_request(
        self,
        params: ParamsLike,
        stdin: bytes = b"",
        *,
        role: Role = Role.RESPONDER,
        keep_conn: bool = False,
    ) -> bytes:
        """A whole request at once: ``send(BeginRequest(role, keep_conn))``,
        ``send(Params(...))`` and ``send(Stdin(stdin))`` in one call and one
        bytes object, without the events. ``params`` is a mapping or pairs,
        names and values bytes or str (sent as UTF-8)."""
        return self._send_request(params, stdin, role, keep_conn)

    def _send_request(self, params: ParamsLike, stdin: bytes, role: Role, keep_conn: bool) -> bytes:
        """send_request() with positional arguments (the transports' path)."""
        if self._request_sent:
            raise LocalProtocolError("one request per connection: a request was already begun")
        self._request_sent = self._request_open = True
        rid = self.request_id
        if type(params) is dict:
            # The same dict again, unchanged since (a snapshot compares
            # equal): no need to build the key below.
            seen = _SEEN_DICTS.get((id(params), rid, role, keep_conn))
            if seen is not None and seen[0] is params and seen[1] == params:
                known = seen[2]
                return _with_stdin(known[0], rid, stdin) if stdin else known[1]
        pairs = tuple(params.items() if isinstance(params, (dict, Mapping)) else params)
        key = (rid, role, keep_conn, pairs)
        try:
            head = _REQUEST_HEADS.get(key)
        except TypeError:  # an unhashable name or value (a bytearray): nothing to remember
            return _encode_request(*key, stdin)[0]
        if head is None:
            wire, head = _encode_request(*key, stdin)
            if len(head[0]) > _MAX_REMEMBERED:
                return wire
            if len(_REQUEST_HEADS) >= _REMEMBERED:
                _REQUEST_HEADS.clear()
            _REQUEST_HEADS[key] = head
        else:
            wire = _with_stdin(head[0], rid, stdin) if stdin else head[1]
        if type(params) is dict:
            if len(_SEEN_DICTS) >= _REMEMBERED:
                _SEEN_DICTS.clear()
            _SEEN_DICTS[(id(params), rid, role, keep_conn)] = (params, dict(params), head)
        return wire

    def _begin(self) -> None:
        if self._request_sent:
            raise LocalProtocolError("one request per connection: a request was already begun")
        self._request_sent = self._request_open = True

    # --- incoming -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means it closed."""
        if not data:
            self._decoder.feed_eof()
            return
        if self.received < HEAD_BYTES:
            self._head.append(data[:HEAD_BYTES])
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
                record = self._decoder._next()
                if record is None:
                    return self._at_end_of_data()
                record_type, request_id, content = record
                # The records of a reply in flight, checked as _interpret
                # would check them, without its lookups.
                if request_id == self.request_id and self._request_open:
                    if record_type == _STDOUT:
                        if content:
                            return Stdout(content)
                        continue
                    if record_type == _STDERR:
                        if content:
                            return Stderr(content)
                        continue
                    if record_type == _END_REQUEST:
                        return self._end_request(content)
                event = self._interpret(record_type, request_id, content)
                if event is not None:
                    return event
        except FastCGIError as exc:
            self._error = exc
            raise

    def _take_reply(  # noqa: PLR0912 - one flat loop on the hot path, on purpose
        self, data: bytes, stdout: List[bytes], stderr: List[bytes]
    ) -> Optional[Tuple[int, ProtocolStatus]]:
        """``receive_data(data)`` then ``_drain(stdout, stderr)``, reading
        the records of a chunk that starts on a record boundary straight
        from it: no copy into the buffer, no tuple per record. Anything out
        of the ordinary (a partial record, another record type or request
        id) goes to the buffer and _drain from there, which checks and
        raises as next_event() does."""
        decoder = self._decoder
        if not data or decoder._buffer or self._error is not None or not self._request_open:
            self.receive_data(data)
            return self._drain(stdout, stderr)
        if self.received < HEAD_BYTES:
            self._head.append(data)
        self.received += len(data)
        if self.received > self.max_reply_bytes:
            self._error = ReplyTooLarge(f"reply larger than the cap of {self.max_reply_bytes} bytes")
            raise self._error
        request_id, size, pos = self.request_id, len(data), 0
        # A reply that ends in the usual FCGI_END_REQUEST (appStatus 0,
        # complete; the reserved bytes are whatever the server left there,
        # PHP-FPM's are not zero) has it in its last 16 bytes; the records
        # before it must then fill the rest exactly, or it was only content
        # that looked so.
        limit = size - _END_RECORD_SIZE
        end_record = _END_COMPLETE.get(request_id) or _end_complete(request_id)
        complete = limit >= 0 and data.startswith(end_record, limit)
        if not complete:
            limit = size
        while limit - pos >= HEADER_SIZE:
            version, record_type, record_id, content_length, padding = _unpack_header(data, pos)
            start = pos + HEADER_SIZE
            end = start + content_length
            if version != VERSION or record_id != request_id or end + padding > limit:
                break
            if record_type == _STDOUT:
                if content_length:
                    stdout.append(data[start:end])
            elif record_type == _STDERR:
                if content_length:
                    stderr.append(data[start:end])
            else:
                break
            pos = end + padding
        if complete and pos == limit:
            self._request_open = False
            return 0, _COMPLETE
        if pos < size:  # into the buffer, copied once (a large record comes in several reads)
            decoder.feed(memoryview(data)[pos:] if pos else data)
        return self._drain(stdout, stderr)

    def _drain(self, stdout: List[bytes], stderr: List[bytes]) -> Optional[Tuple[int, ProtocolStatus]]:
        """What a responder exchange needs of next_event(), without an event
        per record: the content of every complete FCGI_STDOUT and
        FCGI_STDERR record goes to ``stdout`` and ``stderr``; the
        (appStatus, protocolStatus) of FCGI_END_REQUEST comes back, or None
        when more bytes are needed. The records are checked as next_event()
        checks them, and the errors are the same."""
        if self._error is not None:
            raise self._error
        next_record = self._decoder._next
        try:
            while True:
                record = next_record()
                if record is None:
                    self._at_end_of_data()
                    return None
                record_type, request_id, content = record
                if request_id == self.request_id and self._request_open:
                    if record_type == _STDOUT:
                        if content:
                            stdout.append(content)
                        continue
                    if record_type == _STDERR:
                        if content:
                            stderr.append(content)
                        continue
                    if record_type == _END_REQUEST:
                        return self._end_request_body(content)
                event = self._interpret(record_type, request_id, content)
                if event is not None:  # pragma: no cover - only the records above reach here whole
                    raise LocalProtocolError(f"{event!r} in the middle of a responder exchange")
        except FastCGIError as exc:
            self._error = exc
            raise

    def _receive_record(self, record_type: int, request_id: int, content: bytes) -> Optional[Event]:
        """A record already framed (by a Multiplexer, which reads the
        connection for several exchanges): counted against the cap, checked
        and turned into an event as next_event() does."""
        if self._error is not None:
            raise self._error
        try:
            self.received += HEADER_SIZE + len(content)
            if self.received > self.max_reply_bytes:
                raise ReplyTooLarge(f"reply larger than the cap of {self.max_reply_bytes} bytes")
            return self._interpret(record_type, request_id, content)
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

    def _interpret(self, record_type: int, request_id: int, content: bytes) -> Optional[Event]:
        """The event a record stands for; None for the empty record that ends
        a stream, which carries nothing to deliver."""
        kind = _RECORD_TYPES.get(record_type)
        if kind is None:
            raise RemoteProtocolError(f"unknown record type {record_type}")
        if kind in CLIENT_RECORD_TYPES:
            raise RemoteProtocolError(f"server sent {kind.label}, a record only clients send")
        if kind in MANAGEMENT_RECORD_TYPES:
            return self._management(kind, request_id, content)
        if request_id != self.request_id:
            raise RemoteProtocolError(
                f"{kind.label} record for request id {request_id}, expected {self.request_id}"
            )
        if not self._request_open:
            raise RemoteProtocolError(f"{kind.label} record for a request that is not open")
        if kind is RecordType.STDOUT:
            return Stdout(content) if content else None
        if kind is RecordType.STDERR:
            return Stderr(content) if content else None
        return self._end_request(content)

    def _management(self, kind: RecordType, request_id: int, content: bytes) -> Event:
        label = kind.label
        if request_id != NULL_REQUEST_ID:
            raise RemoteProtocolError(
                f"{label} record with request id {request_id} (management records use 0)"
            )
        if not self._values_pending:
            raise RemoteProtocolError(f"unsolicited {label} record")
        if kind is RecordType.UNKNOWN_TYPE:
            if len(content) != UNKNOWN_TYPE_BODY.size:
                raise RemoteProtocolError(
                    f"{label} body of {len(content)} bytes, expected {UNKNOWN_TYPE_BODY.size}"
                )
            self._values_pending -= 1
            return UnknownType(UNKNOWN_TYPE_BODY.unpack(content)[0])
        pairs = decode_pairs(content)
        self._values_pending -= 1
        # Names and values are ASCII by the spec; latin-1 never fails to decode.
        return ValuesResult({n.decode("latin-1"): v.decode("latin-1") for n, v in pairs})

    def _end_request(self, content: bytes) -> EndRequest:
        return EndRequest(*self._end_request_body(content))

    def _end_request_body(self, content: bytes) -> Tuple[int, ProtocolStatus]:
        if len(content) != END_REQUEST_BODY.size:
            raise RemoteProtocolError(
                f"FCGI_END_REQUEST body of {len(content)} bytes, expected {END_REQUEST_BODY.size}"
            )
        app_status, raw_status = END_REQUEST_BODY.unpack(content)
        protocol_status = _PROTOCOL_STATUSES.get(raw_status)
        if protocol_status is None:
            raise RemoteProtocolError(f"FCGI_END_REQUEST with unknown protocolStatus {raw_status}")
        self._request_open = False
        return app_status, protocol_status
