"""Running a check: the safety-net timer, and the guard that turns anything
unexpected into one UNKNOWN line (a traceback only with -vvv)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from typing import Callable, List, NoReturn

import nagiosplugin

from . import report
from .target import Target

__all__ = ["guarded", "run"]

#: Set as soon as the command line is parsed; decides whether a traceback shows.
VERBOSITY = 0

#: How long after -t the safety net fires. fcgi_wire keeps the deadline
#: itself; this only catches what it could not (SPEC: at most +0.5s).
_SAFETY_MARGIN = 0.3

_STATES = {"warning": nagiosplugin.Warn, "critical": nagiosplugin.Critical, "unknown": nagiosplugin.Unknown}


def _arm_safety_net(target: Target, state: nagiosplugin.state.ServiceState) -> None:
    summary = f"check did not finish within {target.timeout:g}s (-t)"

    def expire(signum: int, frame: object) -> None:
        report.end_now(str(state).upper(), summary)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(target.expires_at - time.monotonic(), 0) + _SAFETY_MARGIN)


def run(args: argparse.Namespace, target: Target) -> NoReturn:
    timeout_state = _STATES[args.timeout_state]
    check = args.module.build_check(args, target, timeout_state)
    _arm_safety_net(target, timeout_state)
    if args.format == "json":
        from . import json_output  # noqa: PLC0415 - only this format needs json

        json_output.emit(check, args.mode, str(target))
        sys.exit(0)
    # timeout=0: nagiosplugin's own alarm takes whole seconds only.
    check.main(verbose=args.verbose, timeout=0)
    raise AssertionError("unreachable: Check.main exits")  # pragma: no cover


class Interrupted(BaseException):
    """SIGTERM or SIGINT: unwinds the stack, so every socket gets closed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def guarded(function: Callable[[List[str]], NoReturn], argv: List[str]) -> NoReturn:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        function(argv)
    except Interrupted as stop:
        report.end("UNKNOWN", f"interrupted by {stop}")
    except Exception as exc:
        summary = f"internal error: {type(exc).__name__}: {exc}"
        if VERBOSITY >= 3 and report.FORMAT != "json":
            sys.stdout.write(report.text("UNKNOWN", summary) + traceback.format_exc())
            sys.exit(3)
        report.end("UNKNOWN", summary)
    raise AssertionError("unreachable")  # pragma: no cover
