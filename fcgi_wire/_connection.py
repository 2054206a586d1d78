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
    from typing import Any, Dict, Iterable, List, NoReturn, Optional, Tuple, Type, Union

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


#: That of request id 1, which nearly every exchange uses.
_END_COMPLETE_1 = _end_complete(1)
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


def _encode_head(
    request_id: int, role: Role, keep_conn: bool, pairs: Iterable[Tuple[Text, Text]]
) -> Tuple[bytes, bytes]:
    """BEGIN_REQUEST and the whole PARAMS stream; and that plus the empty
    STDIN record (see _REQUEST_HEADS)."""
    parts = [
        _pack_header(VERSION, _BEGIN_REQUEST, request_id, 8, 0),
        BEGIN_REQUEST_BODY.pack(int(role), FCGI_KEEP_CONN if keep_conn else 0),
    ]
    _stream_parts(parts, _PARAMS, request_id, encode_pairs(pairs))
    head = b"".join(parts)
    return head, head + _pack_header(VERSION, _STDIN, request_id, 0, 0)


def _stdin_parts(head: bytes, request_id: int, stdin: bytes) -> List[bytes]:
    """``head`` and the records of the STDIN stream, in pieces: the body is
    one of them as it is, not a copy."""
    parts = [head]
    _stream_parts(parts, _STDIN, request_id, stdin)
    return parts


def _bad_request_id(request_id: int) -> NoReturn:
    raise LocalProtocolError(f"request id {request_id} must be 1..65535")


def _request_head(params: ParamsLike, rid: int, role: Role, keep_conn: bool) -> Tuple[bytes, bytes]:
    """_encode_head for these params, remembered as _REQUEST_HEADS and
    _SEEN_DICTS say."""
    if type(params) is dict:
        # The same dict again, unchanged since (a snapshot compares
        # equal): no need to build the key below.
        seen = _SEEN_DICTS.get((id(params), rid, role, keep_conn))
        if seen is not None and seen[0] is params and seen[1] == params:
            return seen[2]
    pairs = tuple(params.items() if isinstance(params, (dict, Mapping)) else params)
    key = (rid, role, keep_conn, pairs)
    try:
        head = _REQUEST_HEADS.get(key)
    except TypeError:  # an unhashable name or value (a bytearray): nothing to remember
        return _encode_head(*key)
    if head is None:
        head = _encode_head(*key)
        if len(head[0]) > _MAX_REMEMBERED:
            return head
        if len(_REQUEST_HEADS) >= _REMEMBERED:
            _REQUEST_HEADS.clear()
        _REQUEST_HEADS[key] = head
    if type(params) is dict:
        if len(_SEEN_DICTS) >= _REMEMBERED:
            _SEEN_DICTS.clear()
        _SEEN_DICTS[(id(params), rid, role, keep_conn)] = (params, dict(params), head)
    return head


def _request_wire(params: ParamsLike, stdin: bytes, rid: int, role: Role, keep_conn: bool) -> bytes:
    """The whole request (BEGIN_REQUEST, PARAMS, STDIN) in one bytes object,
    the body copied once."""
    head = _request_head(params, rid, role, keep_conn)
    return b"".join(_stdin_parts(head[0], rid, stdin)) if stdin else head[1]


def _read_records(
    data: bytes, request_id: int, stdout: List[bytes], stderr: List[bytes], pos: int = 0
) -> int:
    """The content of the FCGI_STDOUT and FCGI_STDERR records of ``data``
    from ``pos`` (a record boundary), read straight from it into ``stdout``
    and ``stderr``, up to the first record that is anything else or not
    whole: where that is, or -1 when those records fill the chunk exactly
    up to the usual FCGI_END_REQUEST at its end (the rest of a reply,
    complete, in one chunk). No copy, no tuple per record."""
    # A reply that ends in the usual FCGI_END_REQUEST (appStatus 0,
    # complete; the reserved bytes are whatever the server left there,
    # PHP-FPM's are not zero) has it in its last 16 bytes; the records
    # before it must then fill the rest exactly, or it was only content
    # that looked so. (A slice compared costs less than startswith() with
    # a start, which parses its arguments the slow way.)
    end_record = (
        _END_COMPLETE_1 if request_id == 1 else _END_COMPLETE.get(request_id) or _end_complete(request_id)
    )
    complete = data[-_END_RECORD_SIZE:-3] == end_record
    limit = len(data) - _END_RECORD_SIZE if complete else len(data)
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
    return -1 if complete and pos == limit else pos


class State(enum.Enum):
    IDLE = "idle"  # nothing sent yet, or everything answered
    AWAITING = "awaiting"  # a reply is outstanding
    ERROR = "error"


class Connection:
    """A client connection: ``send`` encodes, ``receive_data`` and
    ``next_event`` decode and check what the server says."""

    __slots__ = (
        "_cut",
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
            _bad_request_id(request_id)
        self.request_id = request_id
        self.max_reply_bytes = max_reply_bytes
        self.received = 0
        self._head: List[bytes] = []  # the first chunks, until they hold HEAD_BYTES
        self._decoder = RecordDecoder()
        # A record the end of a read cut short, kept as it came rather than
        # copied into the decoder: [type, header, what came of the rest,
        # content length, content and padding length, how much came]. See
        # _cut_short.
        self._cut: Optional[List[Any]] = None
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
        return _request_wire(params, stdin, self.request_id, role, keep_conn)

    def _begin(self) -> None:
        if self._request_sent:
            raise LocalProtocolError("one request per connection: a request was already begun")
        self._request_sent = self._request_open = True

    # --- incoming -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means it closed."""
        if self._cut is not None:
            self._uncut(self._cut)
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
        if self._cut is not None:
            self._uncut(self._cut)
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

    def _take_reply(
        self, data: bytes, stdout: List[bytes], stderr: List[bytes]
    ) -> Optional[Tuple[int, ProtocolStatus]]:
        """``receive_data(data)`` then ``_drain(stdout, stderr)``, reading
        the records of a chunk that starts on a record boundary straight
        from it (_read_records). Anything out of the ordinary (a partial
        record, another record type or request id) goes to the buffer and
        _drain from there, which checks and raises as next_event() does."""
        if not data or self._decoder._buffer or self._error is not None or not self._request_open:
            self.receive_data(data)
            return self._drain(stdout, stderr)
        self._count(data)
        pos = 0
        cut = self._cut
        if cut is not None:
            pos = self._join_cut(cut, data, stdout, stderr)
            if pos < 0 or pos == len(data):  # more to come
                return None
        pos = _read_records(data, self.request_id, stdout, stderr, pos)
        return self._take_rest(data, pos, stdout, stderr)

    def _count(self, data: bytes) -> None:
        """What receive_data() does with a chunk before decoding it, save
        the copy of its first bytes: kept for diagnosis, counted, capped."""
        if self.received < HEAD_BYTES:
            self._head.append(data)
        self.received += len(data)
        if self.received > self.max_reply_bytes:
            self._error = ReplyTooLarge(f"reply larger than the cap of {self.max_reply_bytes} bytes")
            raise self._error

    def _take_rest(
        self, data: bytes, pos: int, stdout: List[bytes], stderr: List[bytes]
    ) -> Optional[Tuple[int, ProtocolStatus]]:
        """The end of _take_reply, once _read_records(data) said ``pos``."""
        if pos < 0:
            self._request_open = False
            return 0, _COMPLETE
        if pos == len(data) or self._cut_short(data, pos):  # more to come (_drain would say so)
            return None
        self._decoder.feed(memoryview(data)[pos:] if pos else data)  # into the buffer, copied once
        return self._drain(stdout, stderr)

    def _cut_short(self, data: bytes, pos: int) -> bool:
        """Keep the record at ``pos``, when it is an FCGI_STDOUT or
        FCGI_STDERR record of this request that the chunk ends inside
        (a large one comes in several reads), as it came: a view of the
        chunk, with no copy, until the rest comes (_join_cut) and it is
        copied once, into its content."""
        if len(data) - pos < HEADER_SIZE:
            return False
        version, record_type, record_id, content_length, padding = _unpack_header(data, pos)
        if version != VERSION or record_id != self.request_id or record_type not in (_STDOUT, _STDERR):
            return False
        start = pos + HEADER_SIZE
        have = len(data) - start
        total = content_length + padding
        if have >= total:  # whole after all: the decoder reads it
            return False
        self._cut = [record_type, data[pos:start], [memoryview(data)[start:]], content_length, total, have]
        return True

    def _join_cut(self, cut: List[Any], data: bytes, stdout: List[bytes], stderr: List[bytes]) -> int:
        """The cut record with what ``data`` brings of it: where in ``data``
        it ends once whole (its content then in ``stdout`` or ``stderr``),
        or -1 while it is not."""
        record_type, _, pieces, content_length, total, have = cut
        missing: int = total - have
        if len(data) < missing:
            pieces.append(data)
            cut[5] = have + len(data)
            return -1
        self._cut = None
        if content_length:
            if not have:  # the header alone came before: the content is this chunk's, or all of it
                content = data[:content_length]
            elif have < content_length:
                pieces.append(memoryview(data)[: content_length - have])
                content = b"".join(pieces)
            else:  # only padding came now
                content = b"".join(pieces)[:content_length]
            (stdout if record_type == _STDOUT else stderr).append(content)
        return missing

    def _uncut(self, cut: List[Any]) -> None:
        """The cut record into the decoder, as it came: for every path but
        _take_reply's, which all read from there."""
        self._cut = None
        decoder = self._decoder
        decoder.feed(cut[1])
        for piece in cut[2]:
            decoder.feed(piece)

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
