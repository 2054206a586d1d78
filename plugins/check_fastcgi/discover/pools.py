"""A configured pool, seen as something to monitor."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import TYPE_CHECKING, Any, Dict, List

from fcgi_wire import UnixAddress
from fcgi_wire._values import Value

from ..fpm.config_files import PoolConfig
from ..fpm.listen import listen_address
from ..modes import load
from ..settings import Settings
from ..target import UsageError, target_arguments
from ..text import printable

if TYPE_CHECKING:
    from fcgi_wire import Address

DEFAULT_PING = "/ping"
DEFAULT_STATUS = "/status"


class Pool(Value):
    """A pool and how check_fastcgi reaches it."""

    config: PoolConfig
    #: Where check_fastcgi connects: FPM's listen.
    address: Address
    #: The same for the status page: pm.status_listen when set (PHP 8.0+).
    status_address: Address
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
        return str(self.address)

    @property
    def is_unix(self) -> bool:
        return isinstance(self.address, UnixAddress)

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

    def settings(self, mode: str) -> Dict[str, str]:
        """What the pool's configuration says of a mode's options, as the
        mode's from_settings reads them: FPM's ping path and answer, its
        status path, pool name and pm.max_children."""
        if mode == "ping":
            return {"path": self.ping_path or DEFAULT_PING, "expect": self.ping_response or "pong"}
        if mode == "status":
            found = {"path": self.status_path or DEFAULT_STATUS, "pool": self.name}
            if self.max_children:
                found["max_children"] = self.max_children
            return found
        return {}

    def options(self, mode: str) -> Any:
        """The mode's options for this pool, built as the command line builds them."""
        return load(mode).options_type.from_settings(Settings(self.settings(mode)))

    def check_args(self, mode: str) -> List[str]:
        """check_fastcgi's arguments for a mode, as discovered."""
        address = self.status_address if mode == "status" else self.address
        return [*target_arguments(address), *self.options(mode).arguments()]


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


def as_pool(config: PoolConfig) -> Pool:
    """The pool to monitor; a UsageError says why there is none (its listen
    is no address, or a setting no check takes)."""
    address = listen_address(config.get("listen"))
    if address is None:
        raise UsageError("listen is no address")
    status_address = listen_address(config.get("pm.status_listen")) or address
    socket = socket_owner(config, address.path) if isinstance(address, UnixAddress) else ""
    pool = Pool(config, address, status_address, socket, config.version)
    for mode in pool.monitored():
        pool.options(mode)  # what the checks will be given, refused here rather than there
    return pool


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
