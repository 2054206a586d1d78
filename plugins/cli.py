"""Command line: ``check_fastcgi MODE [TARGET] [OPTIONS]``.

Only the chosen mode's module is imported, so ``handshake`` never pays for
what ``status`` needs. Usage errors go to stdout with exit 3, as the
Monitoring Plugins guidelines ask.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from types import ModuleType
from typing import Dict, List, NoReturn, Optional, Sequence

from . import __version__, report

STARTED = time.monotonic()

#: The modes, each a module of this package that provides HELP,
#: DESCRIPTION, PERFDATA, add_arguments(parser) and build_check(...), and
#: may provide check_arguments(args) -> an error text or None.
MODES = ("handshake", "ping", "status")

TIMEOUT_STATES = ("warning", "critical", "unknown")
UNKNOWN_EXIT = 3


class PluginArgumentParser(argparse.ArgumentParser):
    """argparse, but every message on stdout and every exit a plugin exit."""

    def error(self, message: str) -> NoReturn:
        report.end("UNKNOWN", f"{self.prog}: {message} (see --help)")

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        # --help and --version exit 3 like every Monitoring Plugin.
        super().exit(status or UNKNOWN_EXIT, message)

    def _print_message(self, message: str, file: object = None) -> None:
        super()._print_message(message, sys.stdout)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds and at most a day")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _version() -> str:
    return f"check_fastcgi {__version__} (Python {sys.version.split()[0]})"


def _common_options() -> argparse.ArgumentParser:
    common = PluginArgumentParser(add_help=False)
    target = common.add_argument_group("target")
    target.add_argument(
        "-H", "--host", help="name, IPv4 or IPv6 address, or a socket path (default 127.0.0.1)"
    )
    target.add_argument("-p", "--port", help="TCP port (default 9000)")
    target.add_argument("-s", "--socket", metavar="PATH", help="Unix domain socket; excludes -H and -p")
    limits = common.add_argument_group("limits and output")
    limits.add_argument(
        "-t",
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="one deadline for the whole check (default 10)",
    )
    limits.add_argument(
        "--connect-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="shorter limit on connecting alone (default: the deadline)",
    )
    limits.add_argument(
        "--timeout-state",
        type=str.lower,
        choices=TIMEOUT_STATES,
        default="critical",
        help="state when the deadline passes (default critical)",
    )
    limits.add_argument(
        "--max-reply-bytes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop reading a reply past N bytes (default 8 MiB)",
    )
    limits.add_argument("-v", "--verbose", action="count", default=0, help="more output; repeat up to -vvv")
    limits.add_argument(
        "--format",
        choices=("nagios", "json"),
        default="nagios",
        help="nagios: status line and perfdata; json: one document with state and metrics, exit 0 (Zabbix)",
    )
    limits.add_argument("-V", "--version", action="version", version=_version())
    limits.add_argument("-h", "--help", action="help", help="show this help")
    return common


def _perfdata_epilog(modules: Dict[str, ModuleType]) -> str:
    sections = []
    for mode, module in modules.items():
        lines = [f"perfdata labels of {mode}:"]
        for label, uom, text in module.PERFDATA:
            unit = f" ({uom})" if uom else ""
            lines.append(f"  {label:<26} {text}{unit}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def build_parser(modes: Sequence[str]) -> argparse.ArgumentParser:
    """A parser that knows the given modes (importing only those)."""
    modules = {mode: importlib.import_module(f".{mode}", __package__) for mode in modes}
    parser = PluginArgumentParser(
        prog="check_fastcgi",
        description="Checks a FastCGI server (PHP-FPM and others) by speaking FastCGI to it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'check_fastcgi MODE --help' for a mode's options.\n\n" + _perfdata_epilog(modules),
    )
    parser.add_argument("-V", "--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="mode", metavar="MODE", title="modes")
    subparsers.required = True
    common = _common_options()
    for mode, module in modules.items():
        sub = subparsers.add_parser(
            mode,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=_perfdata_epilog({mode: module}),
            parents=[common],
            add_help=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            prog=f"check_fastcgi {mode}",
        )
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def _modes_to_load(argv: Sequence[str]) -> List[str]:
    if argv and argv[0] in MODES:
        return [argv[0]]
    return list(MODES)  # help, version or a usage error: show them all


def _run(argv: List[str]) -> NoReturn:
    # Imported here, after STARTED: loading nagiosplugin and fcgi_wire takes
    # tens of milliseconds, and -t counts them.
    from fcgi_wire import DEFAULT_MAX_REPLY_BYTES  # noqa: PLC0415

    from . import runner, target  # noqa: PLC0415

    parser = build_parser(_modes_to_load(argv))
    args = parser.parse_args(argv)
    runner.VERBOSITY = args.verbose
    mode_check = getattr(args.module, "check_arguments", None)
    problem = mode_check(args) if mode_check else None
    if problem:
        parser.error(problem)
    try:
        port = None if args.port is None else target.check_port(args.port)
        address = target.parse_address(args.host, port, args.socket)
    except target.UsageError as exc:
        parser.error(str(exc))
    where = target.Target(
        address=address,
        timeout=args.timeout,
        started=STARTED,
        connect_timeout=args.connect_timeout,
        max_reply_bytes=args.max_reply_bytes or DEFAULT_MAX_REPLY_BYTES,
    )
    runner.run(args, where)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    from . import runner  # noqa: PLC0415 - after STARTED, as in _run

    arguments = list(sys.argv[1:] if argv is None else argv)
    report.FORMAT = report.format_from_argv(arguments)
    try:
        runner.guarded(_run, arguments)
    except BrokenPipeError:
        # Whoever read our stdout is gone: nothing left to say, and the
        # interpreter's final flush must not print a traceback either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(3)
