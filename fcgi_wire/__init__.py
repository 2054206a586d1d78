"""fcgi_wire: a FastCGI 1.0 client in the standard library only.

The codec (``Connection``, the events, ``encode_record``, ``RecordDecoder``,
the pair functions, ``Multiplexer``) does no I/O; ``get_values`` and
``request`` are a small blocking transport on top of it, ``fcgi_wire.aio``
the same as coroutines, and ``open_connection`` a connection kept open for
several requests.
"""

from ._connection import DEFAULT_MAX_REPLY_BYTES, Connection, State
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
from ._exchanges import ResponderQuery, ValuesQuery
from ._pairs import decode_pairs, encode_pairs
from ._records import Record, RecordDecoder, encode_record, encode_stream
from ._response import Response, ValuesReply, split_cgi_output
from ._spec import (
    FCGI_MAX_CONNS,
    FCGI_MAX_REQS,
    FCGI_MPXS_CONNS,
    MANAGEMENT_NAMES,
    MAX_CONTENT,
    ProtocolStatus,
    RecordType,
    Role,
)
from ._values import TYPE_CHECKING
from .errors import (
    BacklogFull,
    CantMpxConn,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    FastCGIError,
    LocalProtocolError,
    NameResolutionError,
    NotASocket,
    Overloaded,
    PermissionDenied,
    ProtocolError,
    RemoteProtocolError,
    ReplyTooLarge,
    RequestRefused,
    SocketNotFound,
    Timeout,
    UnknownRole,
)
from .transport import TcpAddress, UnixAddress, get_values, request

if TYPE_CHECKING:
    from .transport import Address


#: Imported on first use, so that ``import fcgi_wire`` stays lean: the
#: asyncio client (and asyncio), the kept connection and its codec.
_LAZY = {
    "aio": ".aio",
    "KeptConnection": ".kept",
    "open_connection": ".kept",
    "Multiplexer": "._multiplex",
}

if TYPE_CHECKING:
    from . import aio  # noqa: F401 - for type checkers; imported on first use
    from ._multiplex import Multiplexer
    from .kept import KeptConnection, open_connection


def __getattr__(name: str) -> object:
    # Address is a typing.Union, built on first use: importing typing costs
    # a short-lived process more than the rest of this package. The asyncio
    # client is imported on first use too, and asyncio with it.
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        module = importlib.import_module(_LAZY[name], __name__)
        return module if name == "aio" else getattr(module, name)
    if name == "Address":
        from typing import Union  # noqa: PLC0415

        return Union[TcpAddress, UnixAddress]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.2.0"

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_REPLY_BYTES",
    "FCGI_MAX_CONNS",
    "FCGI_MAX_REQS",
    "FCGI_MPXS_CONNS",
    "MANAGEMENT_NAMES",
    "MAX_CONTENT",
    "NEED_DATA",
    "AbortRequest",
    "Address",
    "BacklogFull",
    "BeginRequest",
    "CantMpxConn",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "ConnectionRefused",
    "EndRequest",
    "Event",
    "FastCGIError",
    "GetValues",
    "KeptConnection",
    "LocalProtocolError",
    "Multiplexer",
    "NameResolutionError",
    "NotASocket",
    "Overloaded",
    "Params",
    "PermissionDenied",
    "ProtocolError",
    "ProtocolStatus",
    "Record",
    "RecordDecoder",
    "RecordType",
    "RemoteProtocolError",
    "ReplyTooLarge",
    "RequestRefused",
    "ResponderQuery",
    "Response",
    "Role",
    "SocketNotFound",
    "State",
    "Stderr",
    "Stdin",
    "Stdout",
    "TcpAddress",
    "Timeout",
    "UnixAddress",
    "UnknownRole",
    "UnknownType",
    "ValuesQuery",
    "ValuesReply",
    "ValuesResult",
    "decode_pairs",
    "encode_pairs",
    "encode_record",
    "encode_stream",
    "get_values",
    "open_connection",
    "request",
    "split_cgi_output",
]
