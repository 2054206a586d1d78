"""A configured pool, seen as something to monitor."""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import stat
from typing import Dict, List, Optional, Tuple

from fcgi_wire import UnixAddress
from fcgi_wire._values import Value

from ..fpm.config_files import PoolConfig
from ..target import parse_address
from ..text import printable

DEFAULT_PING = "/ping"
DEFAULT_STATUS = "/status"


class Pool(Value):
    """A pool and how check_fastcgi reaches it."""

    config: PoolConfig
    #: The target options for check_fastcgi: ["-s", PATH] or ["-H", HOST, "-p", PORT].
    target: Tuple[str, ...]
    #: The same for the status page: pm.status_listen when set (PHP 8.0+).
    status_target: Tuple[str, ...]
    socket: str  # "owner:group mode" of the Unix socket, or "" for TCP
    #: What tells this pool from others of its name: the PHP version, or
    #: the master's configuration when versions do not tell them apart.
    qualifier: str = ""

    @property
    def title(self) -> str:
        """A name unique on the host: "8.2 www", "www"."""
        return f"{self.qualifier} {self.name}" if self.qualifier else self.name

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def listen(self) -> str:
        """The address as check_fastcgi takes it: a path or HOST:PORT."""
        if self.target[0] == "-s":
            return self.target[1]
        host = self.target[1]
        return f"[{host}]:{self.target[3]}" if ":" in host else f"{host}:{self.target[3]}"

    @property
    def is_unix(self) -> bool:
        return self.target[0] == "-s"

    @property
    def ping_path(self) -> str:
        return self.config.get("ping.path")

    @property
    def ping_response(self) -> str:
        return self.config.get("ping.response")

    @property
    def status_path(self) -> str:
        return self.config.get("pm.status_path")

    @property
    def max_children(self) -> str:
        return self.config.get("pm.max_children")

    @property
    def pm(self) -> str:
        return self.config.get("pm", "dynamic")

    def modes(self) -> List[str]:
        found = ["handshake"]
        if self.ping_path:
            found.append("ping")
        if self.status_path:
            found.append("status")
        return found

    def monitored(self) -> List[str]:
        """The modes worth a service: ping where FPM has a ping page (the
        handshake makes FPM's scoreboard miscount), else the handshake;
        and status where the page is enabled."""
        found = ["ping" if self.ping_path else "handshake"]
        if self.status_path:
            found.append("status")
        return found

    def hints(self) -> List[str]:
        """How to enable what cannot run yet."""
        hints = []
        if not self.status_path:
            hints.append(f"set pm.status_path = {DEFAULT_STATUS} in [{self.name}] to enable status")
        if not self.ping_path:
            hints.append(f"set ping.path = {DEFAULT_PING} in [{self.name}] to enable ping")
        return hints

    def check_args(self, mode: str) -> List[str]:
        """check_fastcgi's arguments for a mode, as discovered."""
        if mode == "ping":
            args = list(self.target)
            if self.ping_path != DEFAULT_PING:
                args += ["--path", self.ping_path]
            if self.ping_response and self.ping_response != "pong":
                args += ["-e", self.ping_response]
            elif self.ping_path != DEFAULT_PING:
                args += ["-e", "pong"]
            return args
        if mode == "status":
            args = list(self.status_target)
            if self.status_path != DEFAULT_STATUS:
                args += ["--path", self.status_path]
            args += ["--pool", self.name]
            if self.max_children:
                args += ["--max-children", self.max_children]
            return args
        return list(self.target)


def check_target(listen: str) -> Optional[Tuple[str, ...]]:
    """FPM's listen value as check_fastcgi's target options: ``9000`` and
    ``0.0.0.0:9000`` listen on every IPv4 address (reached on 127.0.0.1),
    ``[::]:9000`` on every IPv6 one ([::1]); a path is a Unix socket.
    None when it is no address the plugin takes (a port past 65535, a host
    that is no name nor IP literal)."""
    value = listen.strip()
    try:
        if value.startswith("/"):
            address = parse_address(None, None, value)
        else:
            if value.isdecimal():
                value = f"127.0.0.1:{value}"
            host, _, port = value.rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            host = _EVERY_ADDRESS.get(host, host)
            if ":" in host:
                ipaddress.IPv6Address(host)  # the plugin's own check lets any ':' pass
            address = parse_address(host, port, None)
    except ValueError:  # UsageError included
        return None
    if isinstance(address, UnixAddress):
        return ("-s", address.path)
    return ("-H", address.host, "-p", str(address.port))


#: FPM's listen on every address, and where a check reaches it.
_EVERY_ADDRESS = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}  # noqa: S104 - read, not bound


def socket_owner(pool: PoolConfig, path: str) -> str:
    """owner:group mode of the socket as it is, or as configured when it
    does not exist yet."""
    try:
        info = os.stat(path)
    except OSError:
        owner = pool.get("listen.owner") or pool.get("user") or "?"
        group = pool.get("listen.group") or pool.get("group") or "?"
        return f"{owner}:{group} {pool.get('listen.mode', '0660')} (configured; no socket yet)"
    if not stat.S_ISSOCK(info.st_mode):
        return "(not a socket)"
    return f"{_user(info.st_uid)}:{_group(info.st_gid)} {stat.S_IMODE(info.st_mode):04o}"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def as_pool(config: PoolConfig) -> Optional[Pool]:
    target = check_target(config.get("listen"))
    if target is None:
        return None
    status_target = check_target(config.get("pm.status_listen")) or target
    socket = socket_owner(config, target[1]) if target[0] == "-s" else ""
    return Pool(config, target, status_target, socket, config.version)


def qualify(pools: List[Pool]) -> List[Pool]:
    """Pools whose titles collide (the same pool name under two masters of
    no known version) are told apart by their master's configuration."""
    titles: Dict[str, int] = {}
    for pool in pools:
        titles[pool.title] = titles.get(pool.title, 0) + 1
    return [
        pool._replace(qualifier=f"{pool.qualifier} {printable(pool.config.master, 200)}".strip())
        if titles[pool.title] > 1
        else pool
        for pool in pools
    ]
