"""Where to connect, and the limits every exchange honours."""

from __future__ import annotations

import fcgi_wire
from fcgi_wire._values import TYPE_CHECKING, Value

if TYPE_CHECKING:
    from typing import List, Optional, Tuple

    from fcgi_wire import Address
    from fcgi_wire._exchanges import ParamsLike

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000

#: sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_UNIX_PATH = 107

_LABEL_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class UsageError(ValueError):
    """A command line that cannot work; the text says how to fix it."""


class Limits(Value):
    """What bounds an exchange. ``deadline`` is absolute (time.monotonic()),
    set from when the process started, so start-up counts against -t;
    ``timeout`` is the -t it came from, for the words."""

    timeout: float
    deadline: float
    connect_timeout: Optional[float] = None
    max_reply_bytes: int = fcgi_wire.DEFAULT_MAX_REPLY_BYTES
    timeout_state: str = "critical"


class Target(Value):
    """An address and its limits: what a mode talks to."""

    address: Address
    limits: Limits

    @property
    def is_unix(self) -> bool:
        return isinstance(self.address, fcgi_wire.UnixAddress)

    def get_values(self) -> fcgi_wire.ValuesReply:
        limits = self.limits
        return fcgi_wire.get_values(
            self.address,
            deadline=limits.deadline,
            connect_timeout=limits.connect_timeout,
            max_reply_bytes=limits.max_reply_bytes,
        )

    def request(self, params: ParamsLike, stdin: bytes = b"") -> fcgi_wire.Response:
        limits = self.limits
        return fcgi_wire.request(
            self.address,
            params,
            stdin,
            deadline=limits.deadline,
            connect_timeout=limits.connect_timeout,
            max_reply_bytes=limits.max_reply_bytes,
        )

    def __str__(self) -> str:
        return str(self.address)


def parse_address(host: Optional[str], port: Optional[str], socket_path: Optional[str]) -> Address:
    """-H/-p/-s to an address, as check_tcp does: a host starting with / is a
    Unix socket; ``[::1]:9000`` and ``name:9000`` carry their port."""
    number = None if port is None else check_port(port)
    if socket_path is not None:
        if host is not None or port is not None:
            raise UsageError("-s/--socket excludes -H/--host and -p/--port")
        return fcgi_wire.UnixAddress(unix_path(socket_path))
    host = DEFAULT_HOST if host is None else host.strip()
    if not host:
        raise UsageError("-H/--host is empty")
    if host.startswith("/"):
        if port is not None:
            raise UsageError(f"-H {host} is a Unix socket path, which has no port: drop -p")
        return fcgi_wire.UnixAddress(unix_path(host))
    host, embedded_port = _split_port(host)
    if embedded_port is not None:
        if number is not None:
            raise UsageError(f"the port is given twice: in -H and as -p {number}")
        number = check_port(embedded_port)
    check_host(host)
    return fcgi_wire.TcpAddress(host, DEFAULT_PORT if number is None else number)


def target_arguments(address: Address) -> List[str]:
    """``-s PATH`` or ``-H HOST -p PORT``: the command line that gives the
    address back (parse_address's inverse)."""
    if isinstance(address, fcgi_wire.UnixAddress):
        return ["-s", address.path]
    return ["-H", address.host, "-p", str(address.port)]


def _split_port(host: str) -> Tuple[str, Optional[str]]:
    """``[::1]:9000`` -> ('::1', '9000'); ``name:9000`` -> ('name', '9000');
    a bare IPv6 literal keeps its colons. (String methods, not regexes: a
    check starts a new process, and compiling patterns costs it.)"""
    if host.startswith("[") and "]" in host:
        inside, _, rest = host[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdecimal():
            return inside, rest[1:]
        if not rest:
            return inside, None
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
        if name and port.isdecimal():
            return name, port
    return host, None


def _valid_label(label: str) -> bool:
    return 1 <= len(label) <= 63 and set(label) <= _LABEL_CHARACTERS and label[0] != "-" and label[-1] != "-"


def unix_path(path: str) -> str:
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > MAX_UNIX_PATH:
        raise UsageError(
            f"Unix socket path is {size} bytes long; the kernel allows {MAX_UNIX_PATH}: "
            "use a shorter path (or a symlinked directory)"
        )
    if "\0" in path:
        raise UsageError("Unix socket path contains a NUL byte")
    return path


def check_host(host: str) -> None:
    """A name the resolver could look up at all: IP literals pass; names
    need labels of 1 to 63 characters (the idna codec raises otherwise, and
    a resolver would only say "not found")."""
    if ":" in host or host.replace(".", "").isdecimal():
        return  # an IP literal (or nonsense the resolver names clearly)
    name = host[:-1] if host.endswith(".") else host
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise UsageError(f"invalid host name {host!r}") from None
    if len(name) > 253 or not all(_valid_label(label) for label in name.split(".")):
        raise UsageError(
            f"invalid host name {host[:80]!r}: each dot-separated part must be 1 to 63 "
            "letters, digits or hyphens"
        )


def check_port(text: str) -> int:
    digits = text.strip()
    if not digits.isdecimal() or len(digits) > 7:
        raise UsageError(f"invalid port {text[:20]!r}: a number from 1 to 65535")
    port = int(digits)
    if not 1 <= port <= 65535:
        raise UsageError(f"invalid port {port}: a number from 1 to 65535")
    return port
