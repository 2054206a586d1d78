"""A connection that stays open for several requests (FCGI_KEEP_CONN).

Opt-in, for servers that want it: a FastCGI application server that
multiplexes (FCGI_MPXS_CONNS=1) answers several requests at once on one
connection; any server that honours FCGI_KEEP_CONN takes them one after
another. Not for monitoring PHP-FPM: each open connection holds one of its
workers for as long as it stays open (four kept connections starve a pool
of four), so the plugin and ``check_fastcgi serve`` never use this; they
open a connection per request and close it.

    with fcgi_wire.open_connection(address, timeout=5) as conn:
        if conn.get_values().values.get("FCGI_MPXS_CONNS") == "1":
            responses = conn.request_many([(params, b""), (params, b"")])
        else:
            responses = [conn.request(params), conn.request(params)]

Each call has its own deadline (``timeout`` or ``deadline``) and cap, and
raises the errors ``fcgi_wire.request`` raises. After a transport or
protocol error, or a timeout, the connection is closed (its state is
unknown) and every later call raises ConnectionClosed; a refusal
(RequestRefused) ends only its own request. One exchange at a time: calls
from several threads take turns.
"""

from __future__ import annotations

import _socket
import socket
import threading

from ._connection import DEFAULT_MAX_REPLY_BYTES
from ._multiplex import Multiplexer
from ._response import Response, ValuesReply
from ._spec import MANAGEMENT_NAMES, Role
from ._values import TYPE_CHECKING
from .errors import ConnectionClosed, FastCGIError, LocalProtocolError, RequestRefused, Timeout
from .transport import _RECV_SIZE, _connect, _Deadline, _deadline, _reason, _send

if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple, Union

    from ._connection import ParamsLike
    from ._multiplex import Outcome
    from .transport import Address

__all__ = ["KeptConnection", "open_connection"]


class KeptConnection:
    """One open connection to ``address``; see the module docstring."""

    def __init__(
        self,
        address: Address,
        *,
        timeout: float = 10.0,
        deadline: Optional[float] = None,
        connect_timeout: Optional[float] = None,
    ) -> None:
        self.address = address
        self._lock = threading.Lock()
        self._mux = Multiplexer()
        # Left open, its socket warns (ResourceWarning) when collected.
        self._sock: Optional[_socket.socket] = _connect(
            address, _deadline(timeout, deadline, connect_timeout)
        )

    @property
    def closed(self) -> bool:
        return self._sock is None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> KeptConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- exchanges ----------------------------------------------------------

    def request(
        self,
        params: ParamsLike,
        stdin: bytes = b"",
        *,
        role: Role = Role.RESPONDER,
        timeout: float = 10.0,
        deadline: Optional[float] = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> Response:
        """One request on this connection, as ``fcgi_wire.request`` sends it
        (plus FCGI_KEEP_CONN); the connection stays open after it."""
        outcome = self.request_many(
            [(params, stdin)], role=role, timeout=timeout, deadline=deadline, max_reply_bytes=max_reply_bytes
        )[0]
        return outcome  # type: ignore[return-value]

    def request_many(
        self,
        requests: Iterable[Tuple[ParamsLike, bytes]],
        *,
        role: Role = Role.RESPONDER,
        timeout: float = 10.0,
        deadline: Optional[float] = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        return_exceptions: bool = False,
    ) -> List[Union[Response, RequestRefused]]:
        """Several (params, stdin) requests at once, each on its own request
        id, answered as the server interleaves them; the responses in the
        order of ``requests``. For a server that multiplexes
        (FCGI_MPXS_CONNS=1); one that does not may refuse the extra ones
        (CantMpxConn) or take them in turn. A refusal is raised once all
        are answered, or returned in its place with ``return_exceptions``.
        ``deadline`` or ``timeout`` bounds the whole batch."""
        with self._lock:
            self._check_open()
            mux = self._mux
            ids: List[int] = []
            wire: List[bytes] = []
            for params, stdin in requests:
                request_id, outgoing = mux.start(params, stdin, role=role, max_reply_bytes=max_reply_bytes)
                ids.append(request_id)
                wire.append(outgoing)
            outcomes = self._exchange(b"".join(wire), set(ids), _deadline(timeout, deadline, None))
        results = [outcomes[request_id] for request_id in ids]
        if not return_exceptions:
            for outcome in results:
                if isinstance(outcome, RequestRefused):
                    raise outcome
        return results  # type: ignore[return-value]

    def get_values(
        self,
        names: Iterable[str] = MANAGEMENT_NAMES,
        *,
        timeout: float = 10.0,
        deadline: Optional[float] = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> ValuesReply:
        """FCGI_GET_VALUES on this connection (FCGI_MPXS_CONNS says whether
        request_many() is for this server)."""
        with self._lock:
            self._check_open()
            outgoing = self._mux.start_values(names, max_reply_bytes=max_reply_bytes)
            outcomes = self._exchange(outgoing, {0}, _deadline(timeout, deadline, None))
        return outcomes[0]  # type: ignore[return-value]

    def _check_open(self) -> None:
        if self._sock is None:
            raise ConnectionClosed("the kept connection is closed", address=str(self.address))

    def _exchange(self, outgoing: bytes, waiting: Iterable[int], deadline: _Deadline) -> Dict[int, Outcome]:
        sock = self._sock
        mux = self._mux
        address = self.address
        if sock is None:  # pragma: no cover - _check_open() came first
            raise ConnectionClosed("the kept connection is closed", address=str(address))
        outcomes: Dict[int, Outcome] = {}
        pending = set(waiting)
        sent = 0
        received = mux.received
        try:
            _send(sock, outgoing, deadline, address)  # the blocking client's own send
            sent = len(outgoing)
            while pending:
                got = mux.received - received
                phase = "reply-incomplete" if got else "reply"
                sock.settimeout(deadline.remaining(phase, address, received=got))
                try:
                    data = sock.recv(_RECV_SIZE)
                except socket.timeout:
                    raise Timeout(phase, deadline.budget, address=str(address), received=got) from None
                except OSError as exc:
                    raise ConnectionClosed(
                        f"{_reason(exc)} before the reply was complete ({got} bytes received)"
                    ) from None
                for request_id, outcome in mux.receive_data(data, deadline.elapsed()):
                    if request_id not in pending:  # pragma: no cover - the multiplexer routes by id
                        raise LocalProtocolError(f"an answer for request id {request_id}, not asked here")
                    pending.discard(request_id)
                    outcomes[request_id] = outcome
        except FastCGIError as exc:
            self.close()  # whatever the server does next, this connection cannot tell
            if exc.address is None:
                exc.address = str(address)
            exc.sent = sent
            exc.received = max(exc.received, mux.received - received)
            exc.head = mux.head
            raise
        except BaseException:
            self.close()
            raise
        return outcomes


def open_connection(
    address: Address,
    *,
    timeout: float = 10.0,
    deadline: Optional[float] = None,
    connect_timeout: Optional[float] = None,
) -> KeptConnection:
    """Connect to ``address`` for several requests; use as a context manager.
    ``timeout``/``deadline`` and ``connect_timeout`` bound connecting; each
    request then has its own."""
    return KeptConnection(address, timeout=timeout, deadline=deadline, connect_timeout=connect_timeout)
