"""An asyncio client: ``request`` and ``get_values`` as coroutines.

The same exchanges as the blocking ``fcgi_wire.request`` and
``fcgi_wire.get_values``, with the same semantics: one deadline over
resolve, connect, send and receive, a shorter limit on connecting, the cap
on the reply, the same errors (``Timeout`` with its phase,
``ConnectionRefused``, ``SocketNotFound``, ``NotASocket``,
``PermissionDenied``, ``BacklogFull``, ``ConnectionClosed``,
``RemoteProtocolError``, the refusals), TCP over IPv4 and IPv6 and Unix
sockets. The codec is the blocking client's own; only the waiting differs.
The socket is closed on every path, cancellation included.

Not imported by ``import fcgi_wire`` (asyncio costs a short-lived process
more than the rest of the package): ``import fcgi_wire.aio``, or use
``fcgi_wire.aio`` after ``import fcgi_wire``, which imports it then.
"""

from __future__ import annotations

import asyncio
import errno
import socket

from ._connection import DEFAULT_MAX_REPLY_BYTES
from ._exchanges import ResponderQuery, ValuesQuery
from ._response import Response, ValuesReply
from ._spec import MANAGEMENT_NAMES, Role
from ._values import TYPE_CHECKING
from .errors import ConnectionClosed, FastCGIError, NameResolutionError, NotASocket, Timeout
from .transport import (
    _LITERALS,
    _RECV_SIZE,
    UnixAddress,
    _connect_error,
    _Deadline,
    _deadline,
    _host_bytes,
    _ip_literal,
    _not_a_socket,
    _reason,
    _sockaddr_text,
)

if TYPE_CHECKING:
    from typing import Any, Iterable, List, Optional, Tuple, TypeVar

    from ._exchanges import ParamsLike
    from .transport import Address, SockAddr, _Query

    R = TypeVar("R", Response, ValuesReply)

__all__ = ["get_values", "request"]


class _Progress:
    """Where an exchange is, for the Timeout that may end it."""

    __slots__ = ("phase", "received", "sent")

    def __init__(self) -> None:
        self.phase = "connect"
        self.sent = 0
        self.received = 0


async def _resolve(address: Any, deadline: _Deadline) -> List[Tuple[int, SockAddr]]:
    key = (address.host, address.port)
    literal = _LITERALS.get(key) or _ip_literal(address)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    host = _host_bytes(address.host)
    try:
        infos = await loop.getaddrinfo(
            host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, address.port, type=socket.SOCK_STREAM),
                deadline.remaining("resolve", address),
            )
        except asyncio.TimeoutError:
            raise Timeout("resolve", deadline.budget, address=str(address)) from None
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise NameResolutionError(f"cannot resolve {address.host!r}: {reason}", address=None) from None
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


async def _connect(address: Address, deadline: _Deadline) -> socket.socket:
    """A connected non-blocking socket, within the connect limit."""
    loop = asyncio.get_running_loop()
    if isinstance(address, UnixAddress):
        targets: List[Tuple[int, SockAddr]] = [(socket.AF_UNIX, address.path)]
    else:
        targets = await _resolve(address, deadline)
    failures: List[Tuple[str, OSError]] = []
    for family, sockaddr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            left = deadline.connect_remaining(address)
            if family == socket.AF_UNIX:
                # Done or refused at once; asyncio would take EAGAIN (a full
                # backlog) for a connect in progress.
                sock.connect(sockaddr)
            else:
                await asyncio.wait_for(loop.sock_connect(sock, sockaddr), left)
        except asyncio.TimeoutError:
            sock.close()
            raise Timeout("connect", deadline.connect_limit, address=str(address)) from None
        except OSError as exc:
            sock.close()
            failures.append((_sockaddr_text(family, sockaddr), exc))
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    where = str(address)
    if isinstance(address, UnixAddress) and failures and failures[0][1].errno == errno.ECONNREFUSED:
        kind = _not_a_socket(address.path)
        if kind is not None:
            raise NotASocket(f"not a socket ({kind})", address=where)
    raise _connect_error(where, failures)


async def _exchange(sock: socket.socket, query: _Query[R], deadline: _Deadline, progress: _Progress) -> R:
    loop = asyncio.get_running_loop()
    progress.phase = "send"
    try:
        await loop.sock_sendall(sock, query.outgoing)
    except OSError as exc:
        raise ConnectionClosed(f"sending the request failed: {_reason(exc)}") from None
    progress.sent = len(query.outgoing)
    progress.phase = "reply"
    while True:
        try:
            data = await loop.sock_recv(sock, _RECV_SIZE)
        except OSError as exc:
            raise ConnectionClosed(
                f"{_reason(exc)} before the reply was complete ({progress.received} bytes received)"
            ) from None
        progress.received += len(data)
        if data:
            progress.phase = "reply-incomplete"
        result = query.receive_data(data, deadline.elapsed())
        if result is not None:
            return result


async def _run(address: Address, query: _Query[R], deadline: _Deadline) -> R:
    progress = _Progress()
    try:
        sock = await _connect(address, deadline)
        try:
            left = deadline.remaining("send", address)
            try:
                return await asyncio.wait_for(_exchange(sock, query, deadline, progress), left)
            except asyncio.TimeoutError:
                raise Timeout(
                    progress.phase, deadline.budget, address=str(address), received=progress.received
                ) from None
        finally:
            sock.close()
    except FastCGIError as exc:
        conn = query.connection  # made only now when the reply came whole (ResponderQuery)
        if exc.address is None:
            exc.address = str(address)
        exc.sent = progress.sent
        exc.received = max(exc.received, conn.received)
        exc.head = conn.head
        raise


async def get_values(
    address: Address,
    names: Iterable[str] = MANAGEMENT_NAMES,
    *,
    timeout: float = 10.0,
    deadline: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> ValuesReply:
    """``fcgi_wire.get_values``, awaited: the same arguments and errors."""
    query = ValuesQuery(names, max_reply_bytes=max_reply_bytes)
    return await _run(address, query, _deadline(timeout, deadline, connect_timeout))


async def request(
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
    """``fcgi_wire.request``, awaited: the same arguments and errors.

    ``deadline`` is a ``time.monotonic()`` reading (what the running loop's
    ``time()`` reads on Linux too), ``timeout`` seconds from now otherwise;
    ``connect_timeout`` bounds connecting alone.
    """
    query = ResponderQuery(params, stdin, role=role, max_reply_bytes=max_reply_bytes)
    return await _run(address, query, _deadline(timeout, deadline, connect_timeout))
