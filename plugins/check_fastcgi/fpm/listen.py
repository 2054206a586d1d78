"""FPM's ``listen`` (and ``pm.status_listen``) as the address a check
connects to: the one address model from FPM's configuration to fcgi_wire,
never a round trip through text."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Optional

import fcgi_wire

from ..target import UsageError, check_host, check_port, unix_path

if TYPE_CHECKING:
    from fcgi_wire import Address

#: FPM's listen on every address, and where a check reaches it.
_EVERY_ADDRESS = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}  # noqa: S104 - read, not bound


def listen_address(listen: str) -> Optional[Address]:
    """The address FPM listens on, as a check reaches it: ``9000`` and
    ``0.0.0.0:9000`` listen on every IPv4 address (reached on 127.0.0.1),
    ``[::]:9000`` on every IPv6 one ([::1]); a path is a Unix socket. As
    FPM reads it, the port follows the last colon (``::1:9000`` is [::1]).
    None when it is no address the plugin takes (a port past 65535, a
    host that is no name nor IP literal)."""
    value = listen.strip()
    try:
        if value.startswith("/"):
            return fcgi_wire.UnixAddress(unix_path(value))
        host, _, port = value.rpartition(":") if not value.isdecimal() else ("127.0.0.1", "", value)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        host = _EVERY_ADDRESS.get(host, host)
        if ":" in host:
            ipaddress.IPv6Address(host)  # check_host lets any ':' pass as a literal
        check_host(host)
        return fcgi_wire.TcpAddress(host, check_port(port))
    except (UsageError, ValueError):
        return None
