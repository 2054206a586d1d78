"""A blocking client: one deadline over resolve, connect, send and receive.

The codec does the thinking; this module only moves bytes and turns socket
failures into fcgi_wire errors that name the address and the phase.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import socket
import stat
import threading
import time

from ._connection import DEFAULT_MAX_REPLY_BYTES, Connection
from ._exchanges import ResponderQuery, ValuesQuery
from ._response import Response, ValuesReply
from ._spec import MANAGEMENT_NAMES, Role
from ._values import TYPE_CHECKING, Value
from .errors import (
    BacklogFull,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    FastCGIError,
    NameResolutionError,
    NotASocket,
    PermissionDenied,
    SocketNotFound,
    Timeout,
)

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Tuple, Type, TypeVar, Union

    from ._exchanges import ParamsLike

    SockAddr = Union[Tuple[Any, ...], str]
    AddrInfo = List[Tuple[int, SockAddr]]
    Address = Union["TcpAddress", "UnixAddress"]

_RECV_SIZE = 65536


class TcpAddress(Value):
    """A host name or IP literal (brackets around IPv6 allowed) and a port."""

    host: str
    port: int = 9000

    def __post_init__(self) -> None:
        if self.host.startswith("[") and self.host.endswith("]"):
            object.__setattr__(self, "host", self.host[1:-1])

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class UnixAddress(Value):
    path: str

    def __str__(self) -> str:
        return self.path


_monotonic = time.monotonic


class _Deadline:
    """One absolute deadline (time.monotonic()) for an exchange, plus the
    optional shorter limit on connecting, counted from the exchange's start."""

    __slots__ = ("connect_deadline", "deadline", "started")

    def __init__(
        self, deadline: float, connect_timeout: Optional[float], started: Optional[float] = None
    ) -> None:
        if started is None:
            started = _monotonic()
        self.started = started
        self.deadline = deadline
        if connect_timeout is not None and started + connect_timeout < deadline:
            self.connect_deadline = started + connect_timeout
        else:
            self.connect_deadline = deadline

    @property
    def budget(self) -> float:
        """How long the whole exchange had, in seconds."""
        return self.deadline - self.started if self.deadline > self.started else 0.0

    @property
    def connect_limit(self) -> float:
        """How long connecting had."""
        if self.connect_deadline < self.deadline:
            return self.connect_deadline - self.started
        return self.budget

    def elapsed(self) -> float:
        """How long this exchange took so far: what a response time means."""
        return _monotonic() - self.started

    def remaining(self, phase: str, address: object, *, received: int = 0) -> float:
        left = self.deadline - _monotonic()
        if left <= 0:
            raise Timeout(phase, self.budget, address=str(address), received=received)
        return left

    def connect_remaining(self, address: object) -> float:
        left = self.connect_deadline - _monotonic()
        if left <= 0:
            raise Timeout("connect", self.connect_limit, address=str(address))
        return left


#: Socket addresses of IP literals already parsed, by (host, port): the
#: plugin and the sidecar ask the same few targets over and over.
_LITERALS: Dict[Tuple[str, int], Tuple[int, SockAddr]] = {}


def _resolve(address: TcpAddress, deadline: _Deadline) -> AddrInfo:
    """Every address the name resolves to, in the resolver's order.

    getaddrinfo() has no timeout of its own, so a name that needs DNS is
    looked up in a daemon thread that we stop waiting for at the deadline.
    """
    key = (address.host, address.port)
    literal = _LITERALS.get(key)
    if literal is None:
        literal = _ip_literal(address)
        if literal is not None:
            if len(_LITERALS) >= 256:
                _LITERALS.clear()
            _LITERALS[key] = literal
    if literal is not None:
        return [literal]
    where = str(address)
    try:
        infos = socket.getaddrinfo(
            _host_bytes(address.host), address.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        infos = _resolve_in_thread(address, deadline, where)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def _ip_literal(address: TcpAddress) -> Optional[Tuple[int, SockAddr]]:
    """The socket address of a plain IPv4 or IPv6 literal (the usual
    target), without a trip through getaddrinfo."""
    host = address.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if "%" in host:  # a scoped IPv6 address needs getaddrinfo for its scope id
        return None
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return None
    return family, (host, address.port)


def _host_bytes(host: str) -> Union[str, bytes]:
    """getaddrinfo() runs every str host through the idna codec, whose
    import costs a short-lived process more than the lookup; ASCII names
    need none of it."""
    return host.encode("ascii") if host.isascii() else host


def _resolve_in_thread(address: TcpAddress, deadline: _Deadline, where: str) -> List[Any]:
    outcome: Dict[str, Any] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(
                _host_bytes(address.host), address.port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="fcgi_wire-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining("resolve", where))
    if worker.is_alive():
        raise Timeout("resolve", deadline.budget, address=where)
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
    errno.EAGAIN: (BacklogFull, "listen backlog full"),
    # Accepted and reset before connect() returned (a server that hangs up
    # at once): the same words as a reset later on.
    errno.ECONNRESET: (ConnectError, "connection reset by the server"),
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


def _not_a_socket(path: str) -> Optional[str]:
    """What the path is, when it exists and is not a socket (connect() then
    says "connection refused", which sends an operator the wrong way)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a socket"


#: The C socket type under socket.socket, without its Python layer (which
#: costs more per connection than connect() does on a Unix socket): the
#: transport uses nothing of that layer, and an unclosed one still warns.
_Socket = _socket.socket
_AF_UNIX = getattr(socket, "AF_UNIX", -1)

#: Sockets are opened non-blocking, with no timeout to set: what
#: settimeout(0) would do, less a system call. A Unix socket then connects
#: at once or not at all (EAGAIN: backlog full); a TCP connect() returns
#: EINPROGRESS. Either way the request goes out at once, in one send()
#: without the poll() a timeout puts before it: on loopback the TCP
#: handshake is over by the time connect() returns, so waiting for it
#: (poll() and getsockopt()) would cost two system calls to learn nothing.
#: Only a send that finds the handshake still under way waits for it.
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_STREAM = socket.SOCK_STREAM | _NONBLOCK
_new_socket: Callable[[int, int], _socket.socket] = _Socket
if not _NONBLOCK:  # pragma: no cover - every Linux has SOCK_NONBLOCK

    def _new_socket(family: int, kind: int) -> _socket.socket:
        sock = _Socket(family, kind)
        sock.setblocking(False)
        return sock


_IN_PROGRESS = errno.EINPROGRESS
#: What a send() on a connection that was made says when the server has
#: already reset or closed it; any other error from the first send after
#: EINPROGRESS is the handshake's own failure (ECONNREFUSED, ETIMEDOUT,
#: EHOSTUNREACH, ...), so that target is not reachable.
_CLOSED_ERRNOS = (errno.ECONNRESET, errno.EPIPE)
#: A request with a body goes out in its pieces, in one sendmsg(), rather
#: than copied into one bytes object first: a 64 KiB body is the largest
#: allocation of an exchange, and its copy the costliest step after the
#: system calls. At most 16 pieces (POSIX's least IOV_MAX): a body of up to
#: about 300 KiB; a larger one is joined (its send takes longer anyway).
_SENDMSG = hasattr(_Socket, "sendmsg")
_MOST_PARTS = 16


def _connect(address: Address, deadline: _Deadline) -> _socket.socket:
    """A socket connected to ``address`` (non-blocking), within the connect limit."""
    return _open(address, deadline, b"")[0]


def _open(
    address: Address, deadline: _Deadline, outgoing: Union[bytes, List[bytes]]
) -> Tuple[_socket.socket, int]:
    """A socket connected to ``address`` and how much of ``outgoing`` (the
    request, or its pieces) it has sent already: the first send, at once
    (see _STREAM)."""
    failures: List[Tuple[str, OSError]] = []
    if isinstance(address, UnixAddress):
        targets: AddrInfo = [(_AF_UNIX, address.path)]
    else:
        targets = _resolve(address, deadline)
    for family, sockaddr in targets:
        sock = _new_socket(family, _STREAM)
        try:
            if deadline.connect_deadline <= _monotonic():
                raise Timeout("connect", deadline.connect_limit, address=str(address))
            code = sock.connect_ex(sockaddr)
            if code in (0, _IN_PROGRESS):
                try:
                    if isinstance(outgoing, bytes):
                        if outgoing:
                            return sock, sock.send(outgoing)
                    else:
                        return sock, sock.sendmsg(outgoing)
                    error = None
                except OSError as exc:
                    error = exc
                sent = _after_first_send(sock, error, code != 0, deadline, address)
                if sent >= 0:
                    return sock, sent
                code = -sent
            failure = OSError(code, os.strerror(code))
        except OSError as exc:  # an address connect() cannot take (a Unix path too long)
            failure = exc
        except BaseException:
            sock.close()
            raise
        sock.close()
        failures.append((_sockaddr_text(family, sockaddr), failure))
    raise _connect_failed(address, failures)


def _after_first_send(
    sock: _socket.socket, error: Optional[OSError], in_progress: bool, deadline: _Deadline, address: object
) -> int:
    """How much of the request went out after the first send() failed with
    ``error`` (or there was none to send), on a socket whose connect()
    succeeded or is ``in_progress``; minus the errno when that connect
    failed. A handshake still under way is waited for, within the connect
    limit."""
    if error is not None and not isinstance(error, BlockingIOError):
        if in_progress and error.errno not in _CLOSED_ERRNOS:
            return -(error.errno or errno.ECONNREFUSED)
        raise ConnectionClosed(f"sending the request failed: {_reason(error)}") from None
    if not in_progress:  # connected; no room yet (BlockingIOError), or nothing to send
        return 0
    left = deadline.connect_deadline - _monotonic()
    if left > 0:
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        if poller.poll(left * 1000):
            code: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return -code if code else 0
    raise Timeout("connect", deadline.connect_limit, address=str(address))


def _connect_failed(address: Address, failures: List[Tuple[str, OSError]]) -> ConnectError:
    """The error for an address none of whose targets took the connection."""
    where = str(address)
    if isinstance(address, UnixAddress) and failures and failures[0][1].errno == errno.ECONNREFUSED:
        kind = _not_a_socket(address.path)
        if kind is not None:
            return NotASocket(f"not a socket ({kind})", address=where)
    return _connect_error(where, failures)


if TYPE_CHECKING:
    R = TypeVar("R", Response, ValuesReply)
    R_co = TypeVar("R_co", Response, ValuesReply, covariant=True)

    class _Query(Protocol[R_co]):
        """What ValuesQuery and ResponderQuery share."""

        @property
        def outgoing(self) -> bytes: ...

        @property
        def _parts(self) -> Optional[List[bytes]]: ...

        @property
        def _outgoing(self) -> Optional[bytes]: ...  # outgoing, or None while it is in _parts

        @property
        def connection(self) -> Connection: ...

        def receive_data(self, data: bytes, elapsed: float = 0.0) -> Optional[R_co]: ...


def _run(address: Address, query: _Query[R], deadline: _Deadline) -> R:
    sent = received = 0
    try:
        whole = query._outgoing
        first = _pieces(query) if whole is None else whole  # None: a request with a body, in pieces
        size = len(first) if isinstance(first, bytes) else sum(map(len, first))
        sock, done = _open(address, deadline, first)
        try:
            if done < size:
                _send(sock, query.outgoing, deadline, address, done)
            sent = size
            receive, started, end = query.receive_data, deadline.started, deadline.deadline
            while True:  # _receive(), inline: most replies take one pass
                left = end - _monotonic()
                if left <= 0:
                    raise _reply_timeout(deadline, address, received)
                sock.settimeout(left)
                try:
                    data = sock.recv(_RECV_SIZE)
                except socket.timeout:
                    raise _reply_timeout(deadline, address, received) from None
                except OSError as exc:
                    raise _reply_failed(exc, received) from None
                received += len(data)
                result = receive(data, _monotonic() - started)
                if result is not None:
                    return result
        finally:
            sock.close()
    except FastCGIError as exc:
        conn = query.connection
        if exc.address is None:
            exc.address = str(address)
        exc.sent = sent
        exc.received = max(exc.received, conn.received)
        exc.head = conn.head
        raise


def _pieces(query: _Query[R]) -> Union[bytes, List[bytes]]:
    """The pieces of a request with a body, to send as they are (see
    _SENDMSG); joined when they cannot be."""
    parts = query._parts
    if _SENDMSG and parts is not None and len(parts) <= _MOST_PARTS:
        return parts
    return query.outgoing


def _send(
    sock: _socket.socket, outgoing: bytes, deadline: _Deadline, address: object, done: Optional[int] = None
) -> None:
    """The whole request within the deadline, its failures as fcgi_wire
    errors; ``done`` bytes of it already went out (None: find out, with a
    send() at once on a non-blocking socket)."""
    try:
        if done is None:
            try:  # non-blocking: as much as the socket takes now
                done = sock.send(outgoing) if sock.gettimeout() == 0.0 else 0
            except BlockingIOError:
                done = 0
        if done < len(outgoing):
            sock.settimeout(deadline.remaining("send", address))
            sock.sendall(memoryview(outgoing)[done:] if done else outgoing)
    except socket.timeout:
        raise Timeout("send", deadline.budget, address=str(address)) from None
    except OSError as exc:
        raise ConnectionClosed(f"sending the request failed: {_reason(exc)}") from None


def _reply_timeout(deadline: _Deadline, address: object, received: int) -> Timeout:
    phase = "reply-incomplete" if received else "reply"
    return Timeout(phase, deadline.budget, address=str(address), received=received)


def _reply_failed(exc: OSError, received: int) -> ConnectionClosed:
    return ConnectionClosed(f"{_reason(exc)} before the reply was complete ({received} bytes received)")


def _receive(sock: _socket.socket, deadline: _Deadline, address: object, received: int) -> bytes:
    """One recv() within the deadline, its failures as fcgi_wire errors."""
    phase = "reply-incomplete" if received else "reply"
    sock.settimeout(deadline.remaining(phase, address, received=received))
    try:
        return sock.recv(_RECV_SIZE)
    except socket.timeout:
        raise _reply_timeout(deadline, address, received) from None
    except OSError as exc:
        raise _reply_failed(exc, received) from None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ECONNRESET:
        return "connection reset by the server"
    if exc.errno == errno.EPIPE:
        return "connection closed by the server"
    return (exc.strerror or str(exc)).lower()


def _deadline(timeout: float, deadline: Optional[float], connect_timeout: Optional[float]) -> _Deadline:
    started = _monotonic()
    end = started + timeout if deadline is None else deadline
    if connect_timeout is not None:
        return _Deadline(end, connect_timeout, started)
    # _Deadline(end, None, started), for less than a call of the class.
    limits: _Deadline = _new(_Deadline)
    limits.started = started
    limits.deadline = limits.connect_deadline = end
    return limits


_new = object.__new__


def get_values(
    address: Address,
    names: Iterable[str] = MANAGEMENT_NAMES,
    *,
    timeout: float = 10.0,
    deadline: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> ValuesReply:
    """Ask the server for management variables (FCGI_GET_VALUES).

    ``deadline`` (a time.monotonic() reading) bounds everything, or else
    ``timeout`` seconds from now; ``connect_timeout`` bounds the connect
    phase alone. See request() for the errors.
    """
    query = ValuesQuery(names, max_reply_bytes=max_reply_bytes)
    return _run(address, query, _deadline(timeout, deadline, connect_timeout))


def request(
    address: Address,
    params: ParamsLike,
    stdin: bytes = b"",
    *,
    role: Role = Role.RESPONDER,
    timeout: float = 10.0,
    deadline: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> Response:
    """Send one request with exactly these params and body; return the response.

    ``deadline`` (a time.monotonic() reading) bounds everything, or else
    ``timeout`` seconds from now; ``connect_timeout`` bounds the connect
    phase alone. Raises NameResolutionError, a ConnectError
    (ConnectionRefused, SocketNotFound, NotASocket, PermissionDenied,
    BacklogFull), Timeout (with the phase), ConnectionClosed,
    RemoteProtocolError (ReplyTooLarge past ``max_reply_bytes``) or a
    RequestRefused (CantMpxConn, Overloaded, UnknownRole). The socket is
    closed on every path.
    """
    # ResponderQuery(params, stdin, role=role, max_reply_bytes=...), less the
    # dict that keyword arguments to a class cost.
    query: ResponderQuery = _new(ResponderQuery)
    query._begin(params, stdin, role, 1, max_reply_bytes, False)
    return _run(address, query, _deadline(timeout, deadline, connect_timeout))
