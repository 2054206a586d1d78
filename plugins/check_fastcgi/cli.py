"""Command line: ``check_fastcgi MODE [TARGET] [OPTIONS]``, the entry point.

What loads before the signal handlers are in place is kept to a minimum
(this module, ``runner`` and ``output``, all standard library only): from
then on a stop signal ends the check with one UNKNOWN line, never 128+N
and silence. Only the chosen mode's module is imported, so ``handshake``
never pays for what ``status`` needs.
"""

from __future__ import annotations

import time

#: The anchor of the deadline: -t counts from here, start-up included.
STARTED = time.monotonic()

import sys  # noqa: E402 - after STARTED, on purpose

from . import runner  # noqa: E402

# Before anything slow: until now a stop signal ends us without a word.
runner.catch_stop_signals()

from .output import Output, requested_format  # noqa: E402

#: typing.TYPE_CHECKING without importing typing before the handlers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, NoReturn, Optional, Sequence

#: The modes, as in check_fastcgi.modes.NAMES (not imported from there: this
#: module loads before the signal handlers, and keeps what it loads small).
MODE_NAMES = ("handshake", "ping", "status")
_HELP_OR_VERSION = ("-h", "--help", "-V", "--version")


def _missing_mode(argv: Sequence[str]) -> Optional[str]:
    """What is wrong when the first word is not a mode, or None."""
    modes = ", ".join((*MODE_NAMES, "discover")) + " (or serve)"
    if not argv:
        return f"no mode given: check_fastcgi MODE [options], MODE one of {modes}"
    first = argv[0]
    if first in MODE_NAMES or first in _HELP_OR_VERSION:
        return None
    if first.startswith("-"):
        return f"no mode given before {first}: check_fastcgi MODE [options], MODE one of {modes}"
    return f"unknown mode {first[:40]!r}: MODE is one of {modes}"


def _run(argv: List[str], output: Output) -> NoReturn:
    # Imported here, after STARTED and the signal handlers: loading
    # argparse, nagiosplugin and fcgi_wire takes milliseconds, and -t counts
    # them.
    from fcgi_wire import DEFAULT_MAX_REPLY_BYTES  # noqa: PLC0415

    from . import arguments  # noqa: PLC0415
    from .settings import Settings  # noqa: PLC0415
    from .target import Limits, Target, UsageError, parse_address  # noqa: PLC0415

    problem = _missing_mode(argv)
    if problem:
        arguments.build_parser({}, output).error(problem)
    if argv[0] not in MODE_NAMES:  # -h or -V: the whole tree
        arguments.build_parser(arguments.load(MODE_NAMES), output).parse_args(argv)
    name = argv[0]
    mode = arguments.load([name])[name]
    parser = arguments.build_mode_parser(name, mode, output)
    args = parser.parse_args(argv[1:])
    output.verbosity = args.verbose
    try:
        options = mode.options_type.from_settings(Settings(vars(args), arguments.option_names(parser)))
        address = parse_address(args.host, args.port, args.socket)
    except UsageError as exc:
        parser.error(str(exc))
    limits = Limits(
        timeout=args.timeout,
        deadline=STARTED + args.timeout,
        connect_timeout=args.connect_timeout,
        max_reply_bytes=args.max_reply_bytes or DEFAULT_MAX_REPLY_BYTES,
        timeout_state=args.timeout_state,
    )
    target = Target(address, limits)
    runner.run(mode.check(options, target), output, target, name)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        # A long-running subsystem of its own: none of the one-shot
        # machinery (guard, safety timer, exit on output) applies.
        from .serve.main import main as serve  # noqa: PLC0415

        serve(arguments[1:])
    if arguments[:1] == ["discover"]:
        from .discover.main import main as discover  # noqa: PLC0415

        discover(arguments[1:])
    output = Output(requested_format(arguments))
    runner.guarded(output, lambda: _run(arguments, output))
