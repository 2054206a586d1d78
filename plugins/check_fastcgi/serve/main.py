"""``check_fastcgi serve``: the command line, the server's life, and its end.

SIGTERM or SIGINT: stop accepting, let probes in flight finish (each is
bounded by -t), exit 0. Errors in the command line or configuration are one
line on stderr and exit 2 (this is a daemon, not a plugin: its supervisor
reads stderr and exit codes).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from typing import TYPE_CHECKING, Callable, Dict, List, NoReturn, Optional, Sequence

from .. import __version__
from ..target import UsageError, parse_address
from ..text import printable
from .config import (
    DEFAULT_LISTEN,
    SETTINGS,
    ServeConfig,
    TargetConfig,
    from_environment,
    from_toml,
    parse_listen,
    parse_target,
    target_config,
    targets_from_toml,
)

if TYPE_CHECKING:
    from .web import WebConfigSource

USAGE_EXIT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"check_fastcgi serve: {message}\n")
    sys.exit(USAGE_EXIT)


#: The bounds of each limit, the same on the command line and in --config:
#: (lowest, highest, a whole number?).
BOUNDS = {
    "timeout": (0.001, 3600.0, False),
    "connect_timeout": (0.001, 3600.0, False),
    "cache_ttl": (0.0, 3600.0, False),
    "max_inflight": (1, 10000, True),
    "max_connections": (1, 10000, True),
    "scrape_timeout": (0.01, 3600.0, False),
    "scrape_concurrency": (1, 256, True),
}
#: What a --config file may set besides its [targets.NAME] tables.
TOP_LEVEL = ("listen", *BOUNDS, "targets")


def bounded(key: str, value: object, where: str) -> float:
    """``value`` when it is a number within the key's bounds, else a
    UsageError naming ``where`` it came from (infinity, a bool, a string and
    a 400-digit number included)."""
    low, high, whole = BOUNDS[key]
    allowed = isinstance(value, int) or (not whole and isinstance(value, float))
    # The comparison alone refuses NaN and infinity, and compares a huge
    # int exactly (float() of one would overflow).
    if isinstance(value, (int, float)) and allowed and not isinstance(value, bool) and low <= value <= high:
        return value
    kind = "a whole number" if whole else "seconds"
    raise UsageError(f"{where} {str(value)[:20]!r}: give {kind} from {low:g} to {high:g}")


def _limit(key: str, option: str) -> Callable[[str], float]:
    """An argparse type for a limit, with the bounds of BOUNDS."""

    def parse(text: str) -> float:
        try:
            value: object = int(text) if BOUNDS[key][2] else float(text)
        except ValueError:
            value = text
        try:
            return bounded(key, value, option)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="check_fastcgi serve",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "The HTTP health sidecar and Prometheus exporter: /ping, /handshake and /status run that\n"
            "check against a configured target (200 for OK and WARNING, 503 for CRITICAL and UNKNOWN),\n"
            "/health and /healthz report the sidecar, /metrics is Prometheus exposition."
        ),
        epilog=(
            "Targets: -H/-p/-s (one target named 'fpm'), --target NAME=ADDRESS (repeatable), or\n"
            "[targets.NAME] tables in --config. Without any, fastcgi-healthcheck's variables are read:\n"
            "SERVER (listen address), DESTINATION, DESTINATION_PORT, PING_PATH, PING_RESPONSE."
        ),
    )
    listen = parser.add_argument_group("listening")
    listen.add_argument("--listen", metavar="HOST:PORT", help="where to answer HTTP (default 127.0.0.1:9253)")
    listen.add_argument(
        "--max-connections",
        type=_limit("max_connections", "--max-connections"),
        metavar="N",
        help="HTTP connections served at once (default 64)",
    )
    listen.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth for every endpoint, in the Prometheus exporter-toolkit's format (YAML)",
    )
    targets = parser.add_argument_group("targets")
    targets.add_argument("-H", "--host", help="one target: host, IP or socket path")
    targets.add_argument("-p", "--port", help="one target: TCP port (default 9000)")
    targets.add_argument("-s", "--socket", metavar="PATH", help="one target: Unix socket")
    targets.add_argument("--target", action="append", default=[], metavar="NAME=ADDRESS", help="repeatable")
    targets.add_argument(
        "--config", metavar="FILE", help="TOML: listen, timeout, cache_ttl, [targets.NAME] tables"
    )
    targets.add_argument(
        "--discover",
        action="store_true",
        help="every pool in PHP-FPM's configuration (as check_fastcgi discover finds them)",
    )
    targets.add_argument("--discover-root", default="/", metavar="DIR", help=argparse.SUPPRESS)
    checks = parser.add_argument_group("checks (for every target given on the command line)")
    checks.add_argument("--ping-path", metavar="PATH", help="ping's path (default /ping)")
    checks.add_argument(
        "--script-filename", metavar="FILE", help="ping's SCRIPT_FILENAME (default: the path)"
    )
    checks.add_argument("-e", "--expect", metavar="STRING", help="ping's body must contain it")
    checks.add_argument("--status-path", metavar="PATH", help="pm.status_path (default /status)")
    checks.add_argument(
        "--pool",
        metavar="NAME",
        help="the pool's name: labels its series up or down; /status is CRITICAL when the page names another",
    )
    checks.add_argument("--full", action="store_true", help="per-process metrics and longest_request")
    checks.add_argument("-w", "--warning", action="append", default=[], metavar="METRIC=RANGE")
    checks.add_argument("-c", "--critical", action="append", default=[], metavar="METRIC=RANGE")
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "-t", "--timeout", type=_limit("timeout", "-t"), metavar="SECONDS", help="per exchange (default 5)"
    )
    limits.add_argument(
        "--connect-timeout", type=_limit("connect_timeout", "--connect-timeout"), metavar="SECONDS"
    )
    limits.add_argument(
        "--cache-ttl",
        type=_limit("cache_ttl", "--cache-ttl"),
        metavar="SECONDS",
        help="reuse a check's outcome this long (default 0)",
    )
    limits.add_argument(
        "--max-inflight",
        type=_limit("max_inflight", "--max-inflight"),
        metavar="N",
        help="FastCGI exchanges per target at once (default 2)",
    )
    scrapes = parser.add_argument_group("/metrics")
    scrapes.add_argument(
        "--scrape-timeout",
        type=_limit("scrape_timeout", "--scrape-timeout"),
        metavar="SECONDS",
        help="a scrape's time when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds (default 10);"
        " a scrape ends a tenth of it (0.5 s at most) earlier",
    )
    scrapes.add_argument(
        "--scrape-concurrency",
        type=_limit("scrape_concurrency", "--scrape-concurrency"),
        metavar="N",
        help="status pages fetched at once by all scrapes together (default 8)",
    )
    parser.add_argument("-V", "--version", action="version", version=f"check_fastcgi {__version__}")
    return parser


#: The command line's options for a target's settings (config.SETTINGS),
#: as messages name them.
OPTIONS = {
    "ping_path": "--ping-path",
    "script_filename": "--script-filename",
    "expect": "-e",
    "status_path": "--status-path",
    "pool": "--pool",
    "full": "--full",
    "warning": "-w",
    "critical": "-c",
}


def build_config(
    args: argparse.Namespace, environ: Dict[str, str], stopping: Optional[threading.Event] = None
) -> ServeConfig:
    document = from_toml(args.config) if args.config else {}
    unknown = sorted(set(document) - set(TOP_LEVEL))
    if unknown:
        raise UsageError(f"--config: unknown setting {unknown[0][:40]!r}; known: {', '.join(TOP_LEVEL)}")
    given = {key: getattr(args, key) for key in OPTIONS}
    settings: Dict[str, object] = {
        key: value for key, value in given.items() if value not in (None, [], False)
    }

    def by_option(key: str) -> str:
        return OPTIONS.get(key, key)

    # Checked once, named by its option, before any target takes them.
    target_config("fpm", parse_address(None, None, None), settings, by_option)
    targets: List[TargetConfig] = targets_from_toml(document)
    if args.host or args.port or args.socket:
        address = parse_address(args.host, args.port, args.socket)
        targets.append(target_config("fpm", address, settings, by_option))
    for spec in args.target:
        name, address = parse_target(spec)
        targets.append(target_config(name, address, settings, by_option))
    if args.discover:
        targets += discovered_targets(args.discover_root, settings, stopping)
    env_listen, env_targets = from_environment(environ)
    if not targets:
        targets = env_targets
    if not targets:
        raise UsageError("no target: give -H/-p, -s, --target NAME=ADDRESS or --config FILE")
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"target names must differ: {', '.join(names)}")
    listen_text = args.listen or document.get("listen")
    listen = parse_listen(str(listen_text)) if listen_text else env_listen or DEFAULT_LISTEN

    def pick(option: Optional[float], key: str, default: Optional[float]) -> Optional[float]:
        """The command line's value, else the file's (checked), else the default."""
        if option is not None:
            return option
        return bounded(key, document[key], f"--config {key}") if key in document else default

    return ServeConfig(
        listen=listen,
        targets=tuple(targets),
        timeout=float(pick(args.timeout, "timeout", 5.0) or 5.0),
        connect_timeout=pick(args.connect_timeout, "connect_timeout", None),
        cache_ttl=float(pick(args.cache_ttl, "cache_ttl", 0.0) or 0.0),
        max_inflight=int(pick(args.max_inflight, "max_inflight", 2) or 2),
        max_connections=int(pick(args.max_connections, "max_connections", 64) or 64),
        scrape_timeout=float(pick(args.scrape_timeout, "scrape_timeout", 10.0) or 10.0),
        scrape_concurrency=int(pick(args.scrape_concurrency, "scrape_concurrency", 8) or 8),
        web_config_file=args.web_config_file,
    )


def discovered_targets(
    root: str, settings: Dict[str, object], stopping: Optional[threading.Event] = None
) -> List[TargetConfig]:
    """A target per discovered pool, named after it ("8.2-www"), with the
    pool's own ping and status paths and pm.max_children. Discovery takes
    only root's (or our own) masters and files; a pool it finds that still
    makes no target is said on stderr and left out, never fatal."""
    from ..discover.formats import unique  # noqa: PLC0415
    from ..discover.main import discover  # noqa: PLC0415

    found = discover([], from_running=True, root=root, stop=stopping.is_set if stopping else None)
    for line in [*found.skipped, *map(str, found.problems)]:
        log(4, f"discover: {line}")
    names = unique(
        re.sub(r"[^A-Za-z0-9_.-]+", "-", pool.title).strip("-")[:60] or "pool" for pool in found.pools
    )
    targets = []
    # The pool's own settings (its ping and status paths, ping.response,
    # pm.max_children, and its name, which labels its series from the first
    # scrape, up or down, and makes /status say when the socket serves
    # another pool) under the command line's.
    key_of = {mode_option: key for key, mode_option in SETTINGS.items()}
    for pool, name in zip(found.pools, names):
        own = dict(settings)
        for mode in ("ping", "status"):
            for option, value in pool.settings(mode).items():
                own.setdefault(key_of[(mode, option)], value)
        try:
            status_address = pool.status_address if pool.status_address != pool.address else None
            targets.append(target_config(name, pool.address, own, status_address=status_address))
        except UsageError as exc:
            log(4, f"discover: pool {pool.title} left out: {exc}")
    return targets


def log(priority: int, text: str) -> None:
    """One line on stderr with its syslog priority (journald reads <N>);
    the text made printable, so no file name or client can forge a line."""
    sys.stderr.write(f"<{priority}>{printable(text, 1000)}\n")
    sys.stderr.flush()


def main(argv: Sequence[str], environ: Optional[Dict[str, str]] = None) -> NoReturn:
    from ..runner import early_signal  # noqa: PLC0415

    # SIGTERM or SIGINT, from here on: start-up (discovery can take
    # seconds) ends early, a running server drains.
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    if early_signal() is not None:  # told to stop while starting up
        sys.exit(0)
    try:
        import prometheus_client  # noqa: F401, PLC0415
    except ModuleNotFoundError:
        # The fix that fits how this copy was installed: a zipapp carries its
        # own (tools/build-zipapp), Debian's package uses Debian's.
        import zipimport  # noqa: PLC0415

        if isinstance(globals().get("__loader__"), zipimport.zipimporter):
            fail("needs prometheus_client, which this zipapp lacks: build a new one with make zipapp")
        if __file__.startswith("/usr/share/check-fastcgi/"):
            fail("needs prometheus_client: apt install python3-prometheus-client")
        fail("needs prometheus_client: pip install 'check_fastcgi[serve]'")
    args = parser().parse_args(list(argv))
    try:
        config = build_config(args, dict(os.environ if environ is None else environ), stopping)
    except UsageError as exc:
        if stopping.is_set():  # cut short: what is missing is no error
            sys.exit(0)
        fail(str(exc))
    if stopping.is_set():
        sys.exit(0)
    web = None
    if config.web_config_file:
        from .web import WebConfigSource  # noqa: PLC0415

        try:
            web = WebConfigSource(config.web_config_file, log)
        except UsageError as exc:
            fail(str(exc))
    serve(config, stopping, web)


def serve(config: ServeConfig, stopping: threading.Event, web: Optional[WebConfigSource] = None) -> NoReturn:
    from .exporter import Exporter  # noqa: PLC0415
    from .http import SidecarServer  # noqa: PLC0415
    from .probes import Prober  # noqa: PLC0415

    prober = Prober(config)
    exporter = Exporter(prober)
    try:
        server = SidecarServer(config.listen, prober, exporter, web)
    except OSError as exc:
        fail(f"cannot listen on {config.listen[0]}:{config.listen[1]}: {(exc.strerror or str(exc)).lower()}")

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    names = ", ".join(f"{t.name}={t.address}" for t in config.targets)
    how = web.describe() if web is not None else "http"
    log(6, f"check_fastcgi serve {__version__}: listening on {shown} ({how}) for {names}")
    if web is not None and web.clear_passwords():
        log(4, "basic_auth_users without tls_server_config: passwords cross the network in clear text")
    loop = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    loop.start()
    while not stopping.wait(1.0):
        pass
    log(6, "stopping: finishing the probes in flight")
    server.drain()
    server.server_close()  # joins the request threads, each bounded by -t
    exporter.close()  # and the scrapes' exchanges, bounded by their deadline
    sys.exit(0)
