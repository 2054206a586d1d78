"""Where to connect and how long the whole check may take."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

import fcgi_wire

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000

_BRACKETED = re.compile(r"\[([^\]]+)\](?::(\d+))?\Z")
_NAME_AND_PORT = re.compile(r"([^:]+):(\d+)\Z")


class UsageError(ValueError):
    """A command line that cannot work; the text says how to fix it."""


@dataclass(frozen=True)
class Target:
    """The address plus the limits every mode honours. ``started`` is the
    monotonic time the plugin started, so start-up counts against -t."""

    address: fcgi_wire.Address
    timeout: float
    started: float
    connect_timeout: Optional[float]
    max_reply_bytes: int

    @property
    def expires_at(self) -> float:
        return self.started + self.timeout

    @property
    def is_unix(self) -> bool:
        return isinstance(self.address, fcgi_wire.UnixAddress)

    def limits(self) -> Dict[str, Any]:
        """The keyword arguments fcgi_wire.get_values and request take."""
        return {
            "timeout": self.timeout,
            "started": self.started,
            "connect_timeout": self.connect_timeout,
            "max_reply_bytes": self.max_reply_bytes,
        }

    def __str__(self) -> str:
        return str(self.address)


def parse_address(host: Optional[str], port: Optional[int], socket_path: Optional[str]) -> fcgi_wire.Address:
    """-H/-p/-s to an address, as check_tcp does: a host starting with / is a
    Unix socket; ``[::1]:9000`` and ``name:9000`` carry their port."""
    if socket_path is not None:
        if host is not None or port is not None:
            raise UsageError("-s/--socket excludes -H/--host and -p/--port")
        return fcgi_wire.UnixAddress(socket_path)
    host = DEFAULT_HOST if host is None else host.strip()
    if not host:
        raise UsageError("-H/--host is empty")
    if host.startswith("/"):
        if port is not None:
            raise UsageError(f"-H {host} is a Unix socket path, which has no port: drop -p")
        return fcgi_wire.UnixAddress(host)
    embedded_port = None
    bracketed = _BRACKETED.match(host)
    named = _NAME_AND_PORT.match(host)
    if bracketed:
        host, embedded_port = bracketed.group(1), bracketed.group(2)
    elif named:
        host, embedded_port = named.group(1), named.group(2)
    if embedded_port is not None:
        if port is not None:
            raise UsageError(f"the port is given twice: in -H and as -p {port}")
        port = check_port(embedded_port)
    return fcgi_wire.TcpAddress(host, DEFAULT_PORT if port is None else port)


def check_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise UsageError(f"invalid port {text!r}: a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"invalid port {port}: a number from 1 to 65535")
    return port
