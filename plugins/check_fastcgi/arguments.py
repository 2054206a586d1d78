"""The command line's grammar: every option, the usage errors argparse
finds, --help and --version. Imported by ``cli`` inside its guard (argparse
and the modes take milliseconds to load, and a signal may come meanwhile).
"""

from __future__ import annotations

import argparse
import sys

from fcgi_wire._values import TYPE_CHECKING

from . import __version__, runner
from .output import FORMATS

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, NoReturn, Optional, Sequence

    from .modes import Mode
    from .output import Output

# argparse asks gettext for each message it builds; every ask imports
# locale and searches the disk for a catalogue of the default domain, which
# Python does not ship: about 2 ms of every check, for nothing. The plugin
# speaks English (engines parse what it prints), so this one-shot command
# line takes its messages as written.
argparse._ = lambda message: message  # type: ignore[attr-defined]
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # type: ignore[attr-defined]

TIMEOUT_STATES = ("warning", "critical", "unknown")
UNKNOWN_EXIT = 3
_HELP_OR_VERSION = ("-h", "--help", "-V", "--version")


class PluginArgumentParser(argparse.ArgumentParser):
    """argparse, but every message on stdout and every exit a plugin exit."""

    def __init__(self, *args: object, output: Output, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.output = output

    def error(self, message: str) -> NoReturn:
        text = self.output.early("UNKNOWN", f"{self.prog}: {message} (see --help)")
        runner.finish(text, self.output.exit_code("UNKNOWN"))

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        # --help and --version exit 3 like every Monitoring Plugin.
        if message:
            self._print_message(message)
        runner.finish("", status or UNKNOWN_EXIT)

    def _print_message(self, message: str, file: object = None) -> None:
        if message:
            sys.stdout.write(message)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds and at most a day")
    return value


def _positive_int(text: str) -> int:
    if not text.strip().isdecimal() or len(text) > 12:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a whole number")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _version() -> str:
    return f"check_fastcgi {__version__} (Python {sys.version.split()[0]})"


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument(
        "-H", "--host", help="name, IPv4 or IPv6 address, or a socket path (default 127.0.0.1)"
    )
    target.add_argument("-p", "--port", help="TCP port (default 9000)")
    target.add_argument("-s", "--socket", metavar="PATH", help="Unix domain socket; excludes -H and -p")
    limits = parser.add_argument_group("limits and output")
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
        choices=FORMATS,
        default="nagios",
        help="nagios: status line and perfdata; json: one document with state and metrics, exit 0 (Zabbix)",
    )
    limits.add_argument("-V", "--version", action="version", version=_version())
    limits.add_argument("-h", "--help", action="help", help="show this help")


def _perfdata_epilog(modes: Dict[str, Mode]) -> str:
    sections = []
    for name, mode in modes.items():
        lines = [f"perfdata labels of {name}:"]
        for label, uom, text in mode.perfdata:
            unit = f" ({uom})" if uom else ""
            lines.append(f"  {label:<26} {text}{unit}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _mode_parser_settings(name: str, mode: Mode) -> Dict[str, Any]:
    return {
        "description": mode.description,
        "epilog": _perfdata_epilog({name: mode}),
        "add_help": False,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        "prog": f"check_fastcgi {name}",
    }


def build_mode_parser(name: str, mode: Mode, output: Output) -> PluginArgumentParser:
    """The parser of one mode, for ``check_fastcgi MODE ...``: all a check
    needs, and cheaper to build than the whole tree."""
    parser = PluginArgumentParser(output=output, **_mode_parser_settings(name, mode))
    _add_common_options(parser)
    mode.add_arguments(parser)
    return parser


def build_parser(modes: Dict[str, Mode], output: Output) -> PluginArgumentParser:
    """A parser that knows the given modes: for help and usage errors."""
    parser = PluginArgumentParser(
        prog="check_fastcgi",
        description="Checks a FastCGI server (PHP-FPM and others) by speaking FastCGI to it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Run 'check_fastcgi MODE --help' for a mode's options; 'check_fastcgi serve --help' for\n"
            "the HTTP health sidecar and Prometheus exporter; 'check_fastcgi discover --help' to find\n"
            "every pool of this host and write monitoring definitions for them.\n\n" + _perfdata_epilog(modes)
        ),
        output=output,
    )
    parser.add_argument("-V", "--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="mode", metavar="MODE", title="modes")
    subparsers.required = True
    for name, mode in modes.items():
        sub = subparsers.add_parser(name, help=mode.help, output=output, **_mode_parser_settings(name, mode))
        _add_common_options(sub)
        mode.add_arguments(sub)
    return parser


def option_names(parser: argparse.ArgumentParser) -> Callable[[str], str]:
    """How a message names a setting: by its option (``-w/--warning``)."""
    names = {action.dest: "/".join(action.option_strings) for action in parser._actions}
    return lambda key: names.get(key, key)


def load(names: Sequence[str]) -> Dict[str, Mode]:
    from .modes import load as load_mode  # noqa: PLC0415

    return {name: load_mode(name) for name in names}
