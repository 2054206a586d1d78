"""Name-value pairs (spec section 3.4): 1-byte lengths below 128, otherwise
4 bytes with the high bit set."""

from __future__ import annotations

from ._values import TYPE_CHECKING
from .errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from typing import Iterable, List, Tuple, Union

    Text = Union[str, bytes]

_MAX_LENGTH = 0x7FFFFFFF

#: The one-byte lengths, ready made.
_SHORT = tuple(bytes((n,)) for n in range(0x80))


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length > _MAX_LENGTH:
        raise LocalProtocolError(f"a name or value of {length} bytes is longer than FastCGI allows")
    return (length | 0x80000000).to_bytes(4, "big")


def encode_pairs(pairs: Iterable[Tuple[Text, Text]]) -> bytes:
    """Encode pairs; str is sent as UTF-8."""
    out: List[bytes] = []
    for name, value in pairs:
        raw_name = name.encode() if type(name) is str else _raw(name)
        raw_value = value.encode() if type(value) is str else _raw(value)
        name_length, value_length = len(raw_name), len(raw_value)
        if name_length < 0x80 and value_length < 0x80:
            out += (_SHORT[name_length], _SHORT[value_length], raw_name, raw_value)
        else:
            out += (_encode_length(name_length), _encode_length(value_length), raw_name, raw_value)
    return b"".join(out)


def _raw(text: Text) -> bytes:
    """bytes as they are, any other str (a subclass) as UTF-8."""
    return text.encode() if isinstance(text, str) else bytes(text)


def _read_length(data: bytes, pos: int, what: str) -> Tuple[int, int]:
    if pos >= len(data):
        raise RemoteProtocolError(f"name-value pair truncated: {what} length missing at byte {pos}")
    if data[pos] < 0x80:
        return data[pos], pos + 1
    if pos + 4 > len(data):
        raise RemoteProtocolError(f"name-value pair truncated: 4-byte {what} length cut short at byte {pos}")
    return int.from_bytes(data[pos : pos + 4], "big") & _MAX_LENGTH, pos + 4


def decode_pairs(data: bytes) -> List[Tuple[bytes, bytes]]:
    """Decode the content of a PARAMS or GET_VALUES[_RESULT] record.

    Lengths that point past the end raise RemoteProtocolError.
    """
    pairs = []
    pos = 0
    while pos < len(data):
        name_length, pos = _read_length(data, pos, "name")
        value_length, pos = _read_length(data, pos, "value")
        end = pos + name_length + value_length
        if end > len(data):
            raise RemoteProtocolError(
                f"name-value pair truncated: lengths {name_length}+{value_length} "
                f"run {end - len(data)} bytes past the record"
            )
        pairs.append((data[pos : pos + name_length], data[pos + name_length : end]))
        pos = end
    return pairs
