"""The two exchanges a client needs, still without I/O: what to send, and how
the events that come back add up to a result.

A transport writes ``outgoing``, then feeds ``connection`` and passes each
event to ``handle`` until it returns a result.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._connection import DEFAULT_MAX_REPLY_BYTES, Connection
from ._events import (
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
from ._response import Response, ValuesReply, split_cgi_output
from ._spec import MANAGEMENT_NAMES, ProtocolStatus, Role
from ._values import TYPE_CHECKING
from .errors import REFUSALS

if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple, Union

    from ._pairs import Text

    #: Params as a mapping (a plain Dict[str, str] included) or as pairs.
    ParamsLike = Union[
        Mapping[str, str], Mapping[bytes, bytes], Mapping[Text, Text], Iterable[Tuple[Text, Text]]
    ]


def _as_pairs(params: ParamsLike) -> Tuple[Tuple[Text, Text], ...]:
    items: Iterable[Tuple[Text, Text]] = params.items() if isinstance(params, Mapping) else params
    return tuple(items)


class ValuesQuery:
    """FCGI_GET_VALUES on request id 0. PHP-FPM keeps the connection open
    after answering, so the result record itself ends the exchange."""

    def __init__(
        self, names: Iterable[str] = MANAGEMENT_NAMES, *, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ):
        self.connection = Connection(max_reply_bytes=max_reply_bytes)
        self.outgoing = self.connection.send(GetValues(tuple(names)))

    def handle(self, event: Event) -> Optional[ValuesReply]:
        if isinstance(event, ValuesResult):
            return ValuesReply(values=dict(event.values))
        if isinstance(event, UnknownType):
            return ValuesReply(values={}, management_supported=False)
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
    ):
        self.connection = conn = Connection(request_id=request_id, max_reply_bytes=max_reply_bytes)
        self.outgoing = (
            conn.send(BeginRequest(role)) + conn.send(Params(_as_pairs(params))) + conn.send(Stdin(stdin))
        )
        self._stdout: List[bytes] = []
        self._stderr: List[bytes] = []

    def handle(self, event: Event) -> Optional[Response]:
        if isinstance(event, Stdout):
            self._stdout.append(event.data)
        elif isinstance(event, Stderr):
            self._stderr.append(event.data)
        elif isinstance(event, EndRequest):
            if event.protocol_status is not ProtocolStatus.REQUEST_COMPLETE:
                raise REFUSALS[event.protocol_status]()
            status, reason, headers, body = split_cgi_output(b"".join(self._stdout))
            # Positional, in field order: the fast way to build a Value.
            stderr = b"".join(self._stderr)
            app_status, protocol_status = event.app_status, event.protocol_status
            return Response(status, reason, headers, body, stderr, app_status, protocol_status, 0.0)
        return None
