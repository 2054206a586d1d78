"""Events: what a client sends and what it receives, as values.

Outgoing events are passed to ``Connection.send``; incoming ones come out of
``Connection.next_event``. Don't subclass these.
"""

from __future__ import annotations

from ._spec import MANAGEMENT_NAMES, ProtocolStatus, Role
from ._values import TYPE_CHECKING, Value

if TYPE_CHECKING:
    from typing import Dict, Tuple

    from ._pairs import Text


class _Sentinel(type):
    """Metaclass of the sentinels: each sentinel is a class, compared with
    ``is`` and printed by its bare name."""

    def __repr__(cls) -> str:
        return cls.__name__


class NEED_DATA(metaclass=_Sentinel):
    """next_event(): nothing complete yet; feed more bytes."""


class CLOSED(metaclass=_Sentinel):
    """next_event(): the peer closed the connection with nothing outstanding."""


class Event(Value):
    """Base of all events: immutable values."""

    __slots__ = ()


# --- sent by the client --------------------------------------------------------


class GetValues(Event):
    """FCGI_GET_VALUES (section 4.1) asking for these variables."""

    names: Tuple[str, ...] = MANAGEMENT_NAMES


class BeginRequest(Event):
    """FCGI_BEGIN_REQUEST (section 5.1)."""

    role: Role = Role.RESPONDER
    keep_conn: bool = False


class Params(Event):
    """The whole FCGI_PARAMS stream, including the empty record that ends
    it. Names and values are bytes, or str (sent as UTF-8)."""

    pairs: Tuple[Tuple[Text, Text], ...] = ()


class Stdin(Event):
    """The whole FCGI_STDIN stream, including the empty record that ends it."""

    data: bytes = b""


class AbortRequest(Event):
    """FCGI_ABORT_REQUEST (section 5.4)."""


# --- received by the client ------------------------------------------------------


class ValuesResult(Event):
    """FCGI_GET_VALUES_RESULT: the variables the server chose to report."""

    values: Dict[str, str]


class UnknownType(Event):
    """FCGI_UNKNOWN_TYPE: the server does not know a management record type."""

    record_type: int


class Stdout(Event):
    data: bytes


class Stderr(Event):
    data: bytes


class EndRequest(Event):
    """FCGI_END_REQUEST (section 5.5)."""

    app_status: int
    protocol_status: ProtocolStatus
