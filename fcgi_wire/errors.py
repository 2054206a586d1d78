"""One error tree for everything fcgi_wire raises.

Errors carry facts (the address, the phase, bytes sent and received, the
first bytes the peer sent); ``str(error)`` states them in one line. What an
operator should make of them (a busy pool? the wrong port?) is for the
caller to say: it knows what it was checking.
"""

from __future__ import annotations

from ._spec import ProtocolStatus
from ._values import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Optional


class FastCGIError(Exception):
    """Base of every error fcgi_wire raises.

    ``address`` names the peer when the transport knows it (the codec never
    does); ``sent`` and ``received`` count the bytes of the exchange and
    ``head`` holds the first bytes received (at most 64), all filled in by
    the transport.
    """

    def __init__(self, detail: str, *, address: Optional[str] = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.address = address
        self.sent = 0
        self.received = 0
        self.head = b""

    def __str__(self) -> str:
        if self.address is None:
            return self.detail
        return f"{self.address}: {self.detail}"


# --- the peer could not be reached -------------------------------------------


class NameResolutionError(FastCGIError):
    """The host name does not resolve; the detail already names it."""

    def __str__(self) -> str:
        return self.detail


class ConnectError(FastCGIError):
    """Connecting failed; subclasses say why when the reason is known."""

    def __str__(self) -> str:
        return f"connect to {self.address}: {self.detail}"


class ConnectionRefused(ConnectError):
    """Nothing listens at the address."""


class SocketNotFound(ConnectError):
    """The Unix socket file does not exist."""


class PermissionDenied(ConnectError):
    """The operating system refused access to the Unix socket."""


class BacklogFull(ConnectError):
    """The Unix socket's listen backlog is full (EAGAIN on connect)."""


class NotASocket(ConnectError):
    """The Unix socket path names a file that is not a socket."""


# --- the exchange started but did not finish ---------------------------------


class Timeout(FastCGIError):
    """The deadline passed; ``phase`` says what the client was waiting for.

    Phases: ``resolve``, ``connect``, ``send``, ``reply`` (nothing received
    yet on an accepted connection) and ``reply-incomplete`` (part of a reply
    came). ``limit`` is how long the exchange had for that phase, in seconds.
    """

    def __init__(self, phase: str, limit: float, *, address: Optional[str] = None, received: int = 0) -> None:
        detail = f"{phase} timed out after {limit:g}s"
        if received:
            detail += f" ({received} bytes received)"
        super().__init__(detail, address=address)
        self.phase = phase
        self.limit = limit
        self.received = received


class ConnectionClosed(FastCGIError):
    """The peer closed or reset the connection before the reply was complete."""


# --- the peer broke the protocol ---------------------------------------------


class ProtocolError(FastCGIError):
    """Abstract: a FastCGI protocol violation. Raise a subclass."""

    def __init__(self, detail: str, *, address: Optional[str] = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(detail, address=address)


class LocalProtocolError(ProtocolError):
    """We were asked to send something FastCGI cannot express."""


class RemoteProtocolError(ProtocolError):
    """The server sent something that is not valid FastCGI."""


class ReplyTooLarge(RemoteProtocolError):
    """The reply went past the size cap the caller set."""


# --- the server refused the request ------------------------------------------


class RequestRefused(FastCGIError):
    """FCGI_END_REQUEST carried a protocolStatus other than REQUEST_COMPLETE."""

    protocol_status = ProtocolStatus.REQUEST_COMPLETE

    def __init__(self, *, address: Optional[str] = None) -> None:
        super().__init__(f"server refused the request: {self.protocol_status.label}", address=address)


class CantMpxConn(RequestRefused):
    protocol_status = ProtocolStatus.CANT_MPX_CONN


class Overloaded(RequestRefused):
    protocol_status = ProtocolStatus.OVERLOADED


class UnknownRole(RequestRefused):
    protocol_status = ProtocolStatus.UNKNOWN_ROLE


REFUSALS = {cls.protocol_status: cls for cls in (CantMpxConn, Overloaded, UnknownRole)}
