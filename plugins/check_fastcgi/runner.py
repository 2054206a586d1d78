"""Running one check in this process, as a plugin runs: a safety timer, the
signals an engine sends, and a guard that turns anything unexpected into one
UNKNOWN line (a traceback only with -vvv).

This is the one-shot world: process-wide timers and exit-on-output belong
here and nowhere else (a long-running server builds and calls checks
without this module).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from . import output as out

#: typing.TYPE_CHECKING without importing typing (or fcgi_wire, which
#: would load whole) before the signal handlers are in place.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, NoReturn, Optional

    import nagiosplugin

    from .output import Output
    from .target import Target

#: How long after the deadline the safety timer fires. fcgi_wire keeps the
#: deadline itself; this only catches what it could not: a check never
#: outlives -t by more than half a second.
SAFETY_MARGIN = 0.3

#: Signals that end a check: an engine's kill, a terminal's ^C, a hang-up.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal: unwinds the stack, so every socket gets closed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


#: Stop signals that came before the guard was in place (the one piece of
#: process state here: signals are process-wide by nature).
_early: List[int] = []


def _remember(signum: int, frame: object) -> None:
    _early.append(signum)


def early_signal() -> Optional[int]:
    """A stop signal that came before the guard, if any."""
    return _early[0] if _early else None


def catch_stop_signals() -> None:
    """As early as possible: until this runs, a signal kills the process
    with 128+N and no output. Until the guard runs, a signal is only
    remembered (raising it then would escape as a traceback)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _remember)


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def finish(text: str, code: int) -> NoReturn:
    """Print the output and exit. From here on a signal must not cut the
    output in half or print a second status line."""
    _ignore_stop_signals()
    out.write(text)
    if sys.flags.dev_mode:
        sys.exit(code)  # full teardown: ResourceWarnings show what was left open
    # Everything is written and closed (sockets and state files by their
    # own code, before this): skip the interpreter's teardown of every
    # module, a millisecond or two of each of the thousands of checks a
    # monitoring host runs a minute.
    sys.stderr.flush()
    os._exit(code)


def guarded(output: Output, function: Callable[[], NoReturn]) -> NoReturn:
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _interrupt)
        early = early_signal()
        if early is not None:
            raise Interrupted(early)
        function()
    except Interrupted as stop:
        finish(output.early("UNKNOWN", f"interrupted by {stop}"), output.exit_code("UNKNOWN"))
    except Exception as exc:
        summary = f"internal error: {type(exc).__name__}: {exc}"
        details = []
        if output.verbosity >= 3 and output.format != "json":
            import traceback  # noqa: PLC0415

            details = traceback.format_exc().splitlines()
        finish(output.early("UNKNOWN", summary, details=details), output.exit_code("UNKNOWN"))
    raise AssertionError("unreachable")  # pragma: no cover


def run(check: nagiosplugin.Check, output: Output, target: Target, mode: str) -> NoReturn:
    """Run the check under the safety timer, then print and exit."""
    limits = target.limits
    state = limits.timeout_state.upper()
    summary = f"check did not finish within {limits.timeout:g}s (-t)"

    def expire(signum: int, frame: object) -> None:
        # Not an exception: the stack may be anywhere, even inside a lock.
        os.write(sys.stdout.fileno(), output.early(state, summary, mode=mode).encode())
        os._exit(output.exit_code(state))

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(limits.deadline - time.monotonic(), 0) + SAFETY_MARGIN)
    check()
    # Disarmed before printing, so one run never prints two status lines.
    signal.setitimer(signal.ITIMER_REAL, 0)
    text = output.result(check, mode=mode, target=str(target))
    finish(text, output.exit_code(str(check.state).upper()))
