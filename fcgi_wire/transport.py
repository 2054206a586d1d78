"""A blocking client: one deadline over resolve, connect, send and receive.

The codec does the thinking; this module only moves bytes and turns socket
failures into fcgi_wire errors that name the address and the phase.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Protocol, Tuple, Type, TypeVar, Union

from ._connection import DEFAULT_MAX_REPLY_BYTES, Connection
from ._events import NEED_DATA, Event
from ._exchanges import ParamsLike, ResponderQuery, ValuesQuery
from ._response import Response, ValuesReply
from ._spec import MANAGEMENT_NAMES, Role
from .errors import (
    BacklogFull,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    FastCGIError,
    NameResolutionError,
    PermissionDenied,
    SocketNotFound,
    Timeout,
)

_RECV_SIZE = 65536

SockAddr = Union[Tuple[Any, ...], str]
AddrInfo = List[Tuple[int, SockAddr]]


@dataclass(frozen=True)
class TcpAddress:
    """A host name or IP literal (brackets around IPv6 allowed) and a port."""

    host: str
    port: int = 9000

    def __post_init__(self) -> None:
        if self.host.startswith("[") and self.host.endswith("]"):
            object.__setattr__(self, "host", self.host[1:-1])

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return self.path


Address = Union[TcpAddress, UnixAddress]


class _Deadline:
    """The one deadline of an exchange, plus the optional shorter connect limit."""

    def __init__(self, timeout: float, connect_timeout: Optional[float], started: Optional[float]) -> None:
        self.exchange_started = time.monotonic()
        self.started = self.exchange_started if started is None else started
        self.timeout = timeout
        self.connect_limit = min(timeout, connect_timeout) if connect_timeout else timeout

    def elapsed(self) -> float:
        """Time used from the budget (counted from ``started``)."""
        return time.monotonic() - self.started

    def exchange_time(self) -> float:
        """How long this exchange itself took: what a response time means."""
        return time.monotonic() - self.exchange_started

    def remaining(self, phase: str, address: str, *, received: int = 0) -> float:
        left = self.timeout - self.elapsed()
        if left <= 0:
            raise Timeout(phase, self.timeout, address=address, received=received)
        return left

    def connect_remaining(self, address: str) -> float:
        left = self.connect_limit - self.elapsed()
        if left <= 0:
            raise Timeout("connect", self.connect_limit, address=address)
        return left


def _resolve(address: TcpAddress, deadline: _Deadline) -> AddrInfo:
    """Every address the name resolves to, in the resolver's order.

    getaddrinfo() has no timeout of its own, so a name that needs DNS is
    looked up in a daemon thread that we stop waiting for at the deadline.
    """
    where = str(address)
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        infos = _resolve_in_thread(address, deadline, where)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def _resolve_in_thread(address: TcpAddress, deadline: _Deadline, where: str) -> List[Any]:
    outcome: Dict[str, Any] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="fcgi_wire-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining("resolve", where))
    if worker.is_alive():
        raise Timeout("resolve", deadline.timeout, address=where)
    if "error" in outcome:
        reason = getattr(outcome["error"], "strerror", None) or str(outcome["error"])
        raise NameResolutionError(f"cannot resolve {address.host!r}: {reason}", address=None)
    infos: List[Any] = outcome["infos"]
    return infos


def _sockaddr_text(family: int, sockaddr: SockAddr) -> str:
    if family == socket.AF_INET6 and isinstance(sockaddr, tuple):
        return f"[{sockaddr[0]}]:{sockaddr[1]}"
    if isinstance(sockaddr, tuple):
        return f"{sockaddr[0]}:{sockaddr[1]}"
    return str(sockaddr)


_CONNECT_ERRORS: Dict[int, Tuple[Type[ConnectError], str]] = {
    errno.ECONNREFUSED: (ConnectionRefused, "connection refused"),
    errno.ENOENT: (SocketNotFound, "no such socket file"),
    errno.EACCES: (PermissionDenied, "permission denied"),
    errno.EPERM: (PermissionDenied, "permission denied"),
    errno.EAGAIN: (BacklogFull, "listen backlog full: the server is not accepting (overloaded?)"),
}


def _classify(exc: OSError) -> Tuple[Type[ConnectError], str]:
    if exc.errno in _CONNECT_ERRORS:
        return _CONNECT_ERRORS[exc.errno]
    reason = (exc.strerror or str(exc)).lower()
    return ConnectError, reason


def _connect_error(where: str, failures: List[Tuple[str, OSError]]) -> ConnectError:
    classified = [(place, *_classify(exc)) for place, exc in failures]
    kinds = {kind for _, kind, _ in classified}
    reasons = {reason for _, _, reason in classified}
    kind = kinds.pop() if len(kinds) == 1 else ConnectError
    if len(classified) == 1:
        return kind(classified[0][2], address=where)
    if len(reasons) == 1:
        tried = ", ".join(place for place, _, _ in classified)
        return kind(f"{reasons.pop()} (tried {tried})", address=where)
    detail = "; ".join(f"{place} {reason}" for place, _, reason in classified)
    return kind(detail, address=where)


def _connect(address: Address, deadline: _Deadline) -> socket.socket:
    where = str(address)
    if isinstance(address, UnixAddress):
        targets: AddrInfo = [(socket.AF_UNIX, address.path)]
    else:
        targets = _resolve(address, deadline)
    failures: List[Tuple[str, OSError]] = []
    for family, sockaddr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.connect_remaining(where))
            sock.connect(sockaddr)
        except socket.timeout:
            sock.close()
            raise Timeout("connect", deadline.connect_limit, address=where) from None
        except OSError as exc:
            sock.close()
            failures.append((_sockaddr_text(family, sockaddr), exc))
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise _connect_error(where, failures)


R = TypeVar("R", Response, ValuesReply)
R_co = TypeVar("R_co", Response, ValuesReply, covariant=True)


class _Query(Protocol[R_co]):
    """What ValuesQuery and ResponderQuery share."""

    connection: Connection
    outgoing: bytes

    def handle(self, event: Event) -> Optional[R_co]: ...


def _run(
    address: Address,
    query: _Query[R],
    timeout: float,
    connect_timeout: Optional[float],
    started: Optional[float],
) -> R:
    deadline = _Deadline(timeout, connect_timeout, started)
    where = str(address)
    conn = query.connection
    try:
        with _connect(address, deadline) as sock:
            try:
                sock.settimeout(deadline.remaining("send", where))
                sock.sendall(query.outgoing)
            except socket.timeout:
                raise Timeout("send", timeout, address=where) from None
            except OSError as exc:
                raise ConnectionClosed(f"sending the request failed: {_reason(exc)}") from None
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    conn.receive_data(_receive(sock, deadline, where, conn.received))
                    continue
                if not isinstance(event, Event):  # CLOSED: cannot happen while a reply is due
                    raise ConnectionClosed("connection closed")
                result = query.handle(event)
                if result is not None:
                    return dataclasses.replace(result, elapsed=deadline.exchange_time())
    except FastCGIError as exc:
        if exc.address is None:
            exc.address = where
        raise


def _receive(sock: socket.socket, deadline: _Deadline, where: str, received: int) -> bytes:
    phase = "reply-incomplete" if received else "reply"
    sock.settimeout(deadline.remaining(phase, where, received=received))
    try:
        return sock.recv(_RECV_SIZE)
    except socket.timeout:
        raise Timeout(phase, deadline.timeout, address=where, received=received) from None
    except OSError as exc:
        raise ConnectionClosed(
            f"{_reason(exc)} before the reply was complete ({received} bytes received)"
        ) from None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ECONNRESET:
        return "connection reset by the server"
    if exc.errno == errno.EPIPE:
        return "connection closed by the server"
    return (exc.strerror or str(exc)).lower()


def get_values(
    address: Address,
    names: Iterable[str] = MANAGEMENT_NAMES,
    *,
    timeout: float = 10.0,
    connect_timeout: Optional[float] = None,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    started: Optional[float] = None,
) -> ValuesReply:
    """Ask the server for management variables (FCGI_GET_VALUES).

    ``timeout`` bounds everything from ``started`` (a time.monotonic()
    reading, default now) to the answer; ``connect_timeout`` bounds the
    connect phase alone. See request() for the errors.
    """
    query = ValuesQuery(names, max_reply_bytes=max_reply_bytes)
    return _run(address, query, timeout, connect_timeout, started)


def request(
    address: Address,
    params: ParamsLike,
    stdin: bytes = b"",
    *,
    role: Role = Role.RESPONDER,
    timeout: float = 10.0,
    connect_timeout: Optional[float] = None,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    started: Optional[float] = None,
) -> Response:
    """Send one request with exactly these params and body; return the response.

    Raises NameResolutionError, a ConnectError (ConnectionRefused,
    SocketNotFound, PermissionDenied, BacklogFull), Timeout (with the phase),
    ConnectionClosed, RemoteProtocolError (ReplyTooLarge past
    ``max_reply_bytes``) or a RequestRefused (CantMpxConn, Overloaded,
    UnknownRole). The socket is closed on every path.
    """
    query = ResponderQuery(params, stdin, role=role, max_reply_bytes=max_reply_bytes)
    return _run(address, query, timeout, connect_timeout, started)
