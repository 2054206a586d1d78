"""Record framing (spec section 3.3): encoding and an incremental decoder."""

from __future__ import annotations

from ._spec import HEADER, HEADER_SIZE, MAX_CONTENT, VERSION, RecordType
from ._values import TYPE_CHECKING, Value
from .errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union


class Record(Value):
    """One record as it travels; ``type`` is an int because a peer may send
    types this module has no name for."""

    type: int
    request_id: int
    content: bytes = b""


def _check_request_id(request_id: int) -> None:
    if not 0 <= request_id <= 0xFFFF:
        raise LocalProtocolError(f"request id {request_id} does not fit in 16 bits")


#: Zero bytes of every padding the default rule gives (0..7).
_PADDING = tuple(bytes(n) for n in range(8))
_pack_header = HEADER.pack


def encode_record(
    record_type: int, request_id: int, content: bytes = b"", *, padding: Optional[int] = None
) -> bytes:
    """One record, padded to a multiple of 8 bytes as the spec recommends,
    or with exactly ``padding`` bytes (0..255) when given."""
    _check_request_id(request_id)
    if not 0 <= record_type <= 0xFF:
        raise LocalProtocolError(f"record type {record_type} does not fit in 8 bits")
    if len(content) > MAX_CONTENT:
        raise LocalProtocolError(
            f"record content of {len(content)} bytes exceeds {MAX_CONTENT}; use encode_stream"
        )
    if padding is None:
        padding = -len(content) % 8
    elif not 0 <= padding <= 0xFF:
        raise LocalProtocolError(f"padding of {padding} bytes does not fit in 8 bits")
    return HEADER.pack(VERSION, record_type, request_id, len(content), padding) + content + bytes(padding)


def _stream_parts(parts: List[bytes], record_type: int, request_id: int, data: bytes) -> None:
    """Append the records of a whole stream, the empty one that ends it
    included, to ``parts``: the unchecked core of encode_stream (the caller
    has checked the type and the request id)."""
    size = len(data)
    if size:
        if size <= MAX_CONTENT:  # the common case: one record
            padding = -size % 8
            parts += (_pack_header(VERSION, record_type, request_id, size, padding), data, _PADDING[padding])
        else:
            view = memoryview(data)
            for start in range(0, size, MAX_CONTENT):
                piece = bytes(view[start : start + MAX_CONTENT])
                padding = -len(piece) % 8
                parts += (_pack_header(VERSION, record_type, request_id, len(piece), padding), piece)
                parts.append(_PADDING[padding])
    parts.append(_pack_header(VERSION, record_type, request_id, 0, 0))


def encode_stream(record_type: int, request_id: int, data: bytes, *, terminate: bool = True) -> bytes:
    """A stream (PARAMS, STDIN, ...) split into records of at most 65535
    bytes, followed by the empty record that ends it when ``terminate``."""
    _check_request_id(request_id)
    if not 0 <= record_type <= 0xFF:
        raise LocalProtocolError(f"record type {record_type} does not fit in 8 bits")
    parts: List[bytes] = []
    _stream_parts(parts, record_type, request_id, data)
    if not terminate:
        parts.pop()
    return b"".join(parts)


def _describe_bad_version(first_byte: int) -> str:
    # Judged on the first byte alone, so the message never depends on how
    # the input happened to be split.
    hint = " (the peer seems to speak HTTP, not FastCGI)" if first_byte in b"H<" else ""
    return f"bad FastCGI version {first_byte} in record header{hint}"


_unpack_header = HEADER.unpack_from


class RecordDecoder:
    """Turns bytes, in chunks of any size, into complete records.

    It holds at most one partial record plus the unread rest of the chunks it
    was fed: a record is never longer than 8 + 65535 + 255 bytes, so what it
    buffers beyond the caller's own chunk is bounded.
    """

    __slots__ = ("_buffer", "_eof")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a record."""
        return len(self._buffer)

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if self._eof and data:
            raise LocalProtocolError("data fed after end of input")
        self._buffer += data

    def feed_eof(self) -> None:
        self._eof = True

    @property
    def at_eof(self) -> bool:
        return self._eof

    def next_record(self) -> Optional[Record]:
        """The next complete record, or None when more bytes are needed.

        At end of input with a partial record buffered it raises
        RemoteProtocolError, naming how much of the record arrived.
        """
        raw = self._next()
        return None if raw is None else Record(*raw)

    def _next(self) -> Optional[Tuple[int, int, bytes]]:
        """next_record() as a plain (type, request id, content) tuple: what
        the connection reads, without a Record to build and take apart."""
        buffer = self._buffer
        if len(buffer) < HEADER_SIZE:
            if buffer and buffer[0] != VERSION:
                raise RemoteProtocolError(_describe_bad_version(buffer[0]))
            if self._eof and buffer:
                raise RemoteProtocolError(
                    f"truncated record: connection closed after {len(buffer)} of {HEADER_SIZE} header bytes"
                )
            return None
        version, record_type, request_id, content_length, padding = _unpack_header(buffer)
        if version != VERSION:
            raise RemoteProtocolError(_describe_bad_version(version))
        total = HEADER_SIZE + content_length + padding
        if len(buffer) < total:
            if self._eof:
                raise RemoteProtocolError(
                    f"truncated {type_label(record_type)} record: connection closed after "
                    f"{len(buffer)} of {total} bytes"
                )
            return None
        if content_length < 4096:
            content = bytes(buffer[HEADER_SIZE : HEADER_SIZE + content_length])
        else:  # one copy instead of two; the view costs more than a small copy
            with memoryview(buffer) as view:
                content = bytes(view[HEADER_SIZE : HEADER_SIZE + content_length])
        del buffer[:total]
        return record_type, request_id, content


def type_label(record_type: int) -> str:
    """FCGI_STDOUT for 6; type-42 for a number the spec does not define."""
    try:
        return RecordType(record_type).label
    except ValueError:
        return f"type-{record_type}"
