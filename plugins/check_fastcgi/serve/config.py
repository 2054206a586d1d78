"""What the sidecar serves: its listen address, limits, and targets, each
with the options of every mode, built in one place from the command line,
a TOML file or fastcgi-healthcheck's environment variables."""

from __future__ import annotations

import os
import re
import stat
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import fcgi_wire
from fcgi_wire._values import Value

from ..modes.handshake import HandshakeOptions
from ..modes.ping import PingOptions
from ..modes.status import StatusOptions
from ..settings import Settings
from ..target import UsageError, parse_address
from ..text import printable

DEFAULT_LISTEN = ("127.0.0.1", 9253)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


class TargetConfig(Value):
    """One FastCGI server the sidecar may probe: nothing in a request can
    name another."""

    name: str
    address: fcgi_wire.TcpAddress | fcgi_wire.UnixAddress
    ping: PingOptions
    status: StatusOptions
    handshake: HandshakeOptions
    #: Where the status page is served when not at ``address``: a pool's
    #: pm.status_listen (PHP 8.0+), found by --discover.
    status_address: Optional[fcgi_wire.TcpAddress | fcgi_wire.UnixAddress] = None

    def options(self, mode: str) -> Any:
        return {"ping": self.ping, "status": self.status, "handshake": self.handshake}[mode]

    def address_for(self, mode: str) -> fcgi_wire.TcpAddress | fcgi_wire.UnixAddress:
        """Where a mode's exchange goes."""
        return self.status_address or self.address if mode == "status" else self.address


class ServeConfig(Value):
    listen: Tuple[str, int]
    targets: Tuple[TargetConfig, ...]
    timeout: float = 5.0
    connect_timeout: Optional[float] = None
    cache_ttl: float = 0.0
    #: FastCGI exchanges in flight to one target at most (each holds a worker).
    max_inflight: int = 2
    #: HTTP connections served at once; more are answered 503 and closed.
    max_connections: int = 64
    #: Exchanges of /metrics scrapes under way at once, all scrapes
    #: together: the FPM workers a scrape can hold host-wide.
    scrape_concurrency: int = 8
    #: A scrape's time when Prometheus does not say
    #: (X-Prometheus-Scrape-Timeout-Seconds), its own default.
    scrape_timeout: float = 10.0
    #: --web.config.file: TLS and basic auth (the exporter-toolkit's format).
    web_config_file: Optional[str] = None

    def target(self, name: str) -> Optional[TargetConfig]:
        return next((target for target in self.targets if target.name == name), None)


def parse_listen(text: str) -> Tuple[str, int]:
    """``127.0.0.1:9253``, ``[::1]:9253``, ``:9253`` (all addresses: an
    explicit choice), ``9253``."""
    host, _, port = text.rpartition(":")
    if not port.isdecimal() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:9253")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host and ":" not in text:
        host = DEFAULT_LISTEN[0]
    return host, int(port)


def target_name(text: str) -> str:
    if not _NAME.match(text):
        raise UsageError(f"target name {text[:40]!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return text


def parse_target(text: str) -> Tuple[str, fcgi_wire.TcpAddress | fcgi_wire.UnixAddress]:
    """--target NAME=ADDRESS, ADDRESS as in FPM's listen: 127.0.0.1:9000,
    [::1]:9000, /run/php/php8.2-fpm.sock."""
    name, equals, address = text.partition("=")
    if not equals or not address:
        raise UsageError(f"--target {text[:60]!r}: give NAME=ADDRESS, e.g. www=/run/php/php8.2-fpm.sock")
    return target_name(name), parse_address(address, None, None)


#: A target's settings: which mode's option each one is (one target
#: carries both a ping and a status page, so their paths differ by name).
SETTINGS: Dict[str, Tuple[str, str]] = {
    "ping_path": ("ping", "path"),
    "script_filename": ("ping", "script_filename"),
    "expect": ("ping", "expect"),
    "status_path": ("status", "path"),
    "pool": ("status", "pool"),
    "full": ("status", "full"),
    "max_children": ("status", "max_children"),
    "warning": ("status", "warning"),
    "critical": ("status", "critical"),
}


def target_config(
    name: str,
    address: fcgi_wire.TcpAddress | fcgi_wire.UnixAddress,
    settings: Mapping[str, Any],
    where: Optional[Callable[[str], str]] = None,
    status_address: Optional[fcgi_wire.TcpAddress | fcgi_wire.UnixAddress] = None,
) -> TargetConfig:
    """A target from its settings (the TOML table of a target, the command
    line's options applied to every target, or a discovered pool's), each
    mode's options built by the mode's own from_settings. ``where`` names
    a setting in a message (default: the TOML table's words)."""
    where = where or (lambda key: f"target {name}: {key}")
    own: Dict[str, Dict[str, Any]] = {"ping": {}, "status": {}}
    for key, value in settings.items():
        if key not in SETTINGS:
            known = ", ".join(["address", *sorted(SETTINGS)])
            raise UsageError(f"target {name}: unknown setting {key[:40]!r}; known: {known}")
        mode, option = SETTINGS[key]
        own[mode][option] = value

    def named(mode: str) -> Callable[[str], str]:
        """A mode's option as the target's settings name it."""
        keys = {option: key for key, (owner, option) in SETTINGS.items() if owner == mode}
        return lambda option: where(keys.get(option, option))

    return TargetConfig(
        name=name,
        address=address,
        ping=PingOptions.from_settings(Settings(own["ping"], named("ping"))),
        status=StatusOptions.from_settings(Settings(own["status"], named("status"))),
        handshake=HandshakeOptions.from_settings(Settings({})),
        status_address=status_address,
    )


#: A --config file larger than this is refused (a real one is a few KiB).
MAX_CONFIG_BYTES = 1024 * 1024


def from_toml(path: str) -> Dict[str, Any]:
    """The --config file's document; any problem is a UsageError naming the
    file (one line, exit 2), never a traceback."""
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    except ModuleNotFoundError:  # Python 3.9 and 3.10
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]  # noqa: PLC0415
    where = f"--config {printable(path, 200)}"
    data = _read_config(path, where)
    try:
        document: Dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not valid TOML: not UTF-8") from None
    except RecursionError:  # the parser recurses for each nested array or table
        raise UsageError(f"{where}: not valid TOML: nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, and an integer past int()'s digit limit
        raise UsageError(f"{where}: not valid TOML: {printable(str(exc), 120)}") from None
    return document


def _read_config(path: str, where: str) -> bytes:
    """A regular file's bytes, at most MAX_CONFIG_BYTES: a FIFO would block
    the open for ever (hence O_NONBLOCK) and /dev/zero never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"{where}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{where}: not a regular file")
        chunks: List[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:  # one byte past the cap says it is larger
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UsageError(f"{where}: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise UsageError(f"{where}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    return b"".join(chunks)


def targets_from_toml(document: Mapping[str, Any]) -> List[TargetConfig]:
    tables = document.get("targets", {})
    if not isinstance(tables, dict):
        raise UsageError("--config: [targets.NAME] tables expected")
    found = []
    for name, settings in tables.items():
        if not isinstance(settings, dict) or "address" not in settings:
            raise UsageError(f"--config: target {name} needs an address")
        own = {key: value for key, value in settings.items() if key != "address"}
        address = settings["address"]
        if not isinstance(address, str):
            raise UsageError(f"target {name}: address must be a string, not {str(address)[:20]!r}")
        found.append(target_config(target_name(name), parse_address(address, None, None), own))
    return found


def from_environment(environ: Mapping[str, str]) -> Tuple[Optional[Tuple[str, int]], List[TargetConfig]]:
    """fastcgi-healthcheck's variables, so its users can switch without
    touching their probes: SERVER (its own listen address), DESTINATION,
    DESTINATION_PORT, PING_PATH, PING_RESPONSE."""
    listen = parse_listen(environ["SERVER"]) if environ.get("SERVER") else None
    destination = environ.get("DESTINATION")
    if not destination:
        return listen, []
    port = environ.get("DESTINATION_PORT")
    address = parse_address(destination, port, None)
    settings: Dict[str, Any] = {}
    if environ.get("PING_PATH"):
        settings["ping_path"] = environ["PING_PATH"]
    if environ.get("PING_RESPONSE"):
        settings["expect"] = environ["PING_RESPONSE"]
    return listen, [target_config("fpm", address, settings)]
