"""Events: what a client sends and what it receives, as values.

Outgoing events are passed to ``Connection.send``; incoming ones come out of
``Connection.next_event``. Don't subclass these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

from ._spec import MANAGEMENT_NAMES, ProtocolStatus, Role


class _Sentinel(type):
    """Sentinels whose type is themselves, so they dispatch and print well."""

    def __repr__(cls) -> str:
        return cls.__name__


class NEED_DATA(metaclass=_Sentinel):
    """next_event(): nothing complete yet; feed more bytes."""


class CLOSED(metaclass=_Sentinel):
    """next_event(): the peer closed the connection with nothing outstanding."""


class Event:
    """Base of all events."""

    __slots__ = ()


# --- sent by the client --------------------------------------------------------


@dataclass(frozen=True)
class GetValues(Event):
    """FCGI_GET_VALUES (section 4.1) asking for these variables."""

    names: Tuple[str, ...] = MANAGEMENT_NAMES


@dataclass(frozen=True)
class BeginRequest(Event):
    """FCGI_BEGIN_REQUEST (section 5.1)."""

    role: Role = Role.RESPONDER
    keep_conn: bool = False


@dataclass(frozen=True)
class Params(Event):
    """The whole FCGI_PARAMS stream, including the empty record that ends it."""

    pairs: Tuple[Tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True)
class Stdin(Event):
    """The whole FCGI_STDIN stream, including the empty record that ends it."""

    data: bytes = b""


@dataclass(frozen=True)
class AbortRequest(Event):
    """FCGI_ABORT_REQUEST (section 5.4)."""


# --- received by the client ------------------------------------------------------


@dataclass(frozen=True)
class ValuesResult(Event):
    """FCGI_GET_VALUES_RESULT: the variables the server chose to report."""

    values: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UnknownType(Event):
    """FCGI_UNKNOWN_TYPE: the server does not know a management record type."""

    record_type: int


@dataclass(frozen=True)
class Stdout(Event):
    data: bytes


@dataclass(frozen=True)
class Stderr(Event):
    data: bytes


@dataclass(frozen=True)
class EndRequest(Event):
    """FCGI_END_REQUEST (section 5.5)."""

    app_status: int
    protocol_status: ProtocolStatus
