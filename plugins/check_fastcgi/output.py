"""Everything the process prints, in the format the command line asked for.

Nagios text: ``FASTCGI STATE - summary | perfdata`` and, with ``-v``, long
output lines and the perfdata on a last line (nagiosplugin's layout).
JSON (``--format json``, for a Zabbix master item): one document of the
same shape for a result and for an early end (usage error, signal, internal
error), and exit 0, since Zabbix ignores exit codes and reads the state
from the document.
"""

from __future__ import annotations

import sys

#: typing.TYPE_CHECKING without importing typing (or fcgi_wire, which
#: would load whole) before the signal handlers are in place.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence

    import nagiosplugin

EXIT_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
FORMATS = ("nagios", "json")

#: Long output is for a person reading a pager message or monit's status,
#: not for a server's flood: at most this many lines.
MAX_LONG_LINES = 60


def requested_format(argv: Sequence[str]) -> str:
    """The --format of a command line, read before it is parsed, so even a
    usage error comes out in the format the engine reads. Abbreviations are
    off in the parser, so these two spellings are the only ones."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        value = None
        if arg == "--format" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--format="):
            value = arg.split("=", 1)[1]
        if value in FORMATS:
            return value
    return "nagios"


class Output:
    """How this run speaks. ``verbosity`` is known once the command line
    is parsed; until then it is 0."""

    def __init__(self, output_format: str = "nagios", verbosity: int = 0) -> None:
        self.format = output_format
        self.verbosity = verbosity

    def exit_code(self, state: str) -> int:
        return 0 if self.format == "json" else EXIT_CODES[state]

    # --- a check that ends before it has results -----------------------------------------

    def early(
        self, state: str, summary: str, *, mode: Optional[str] = None, details: Sequence[str] = ()
    ) -> str:
        """The whole output of a run that ends with no metrics."""
        if self.format == "json":
            return self._json(state, summary, mode=mode, details=list(details))
        lines = [f"FASTCGI {state} - {_screen(summary)}"] + [_screen(line) for line in details]
        return "\n".join(lines) + "\n"

    # --- a check that ran ------------------------------------------------------------------

    def result(self, check: nagiosplugin.Check, *, mode: str, target: str) -> str:
        state = str(check.state).upper()
        summary = check.summary_str.strip()
        perfdata = " ".join(check.perfdata)
        # The long lines only where they are shown: the summary's verbose()
        # walks every result, a tenth of a ping check's time in serve.
        details = _long_lines(check.verbose_str) if self.format == "json" or self.verbosity else []
        if self.format == "json":
            return self._json(
                state,
                summary,
                mode=mode,
                target=target,
                metrics=_metrics(check),
                details=details,
                perfdata=perfdata,
            )
        status = f"FASTCGI {state}" + (f" - {_screen(summary)}" if summary else "")
        if self.verbosity == 0:
            return status + (f" | {perfdata}" if perfdata else "") + "\n"
        lines = [status] + [_screen(line) for line in details]
        if perfdata:
            lines.append(f"| {perfdata}")
        return "\n".join(lines) + "\n"

    def _json(
        self,
        state: str,
        summary: str,
        *,
        mode: Optional[str] = None,
        target: Optional[str] = None,
        metrics: Optional[Dict[str, Any]] = None,
        details: Optional[List[str]] = None,
        perfdata: str = "",
    ) -> str:
        import json  # noqa: PLC0415 - only this format needs it

        document = {
            "state": state,
            "exit_code": EXIT_CODES[state],
            "summary": summary,
            "mode": mode,
            "target": target,
            "metrics": metrics or {},
            "details": details or [],
            "perfdata": perfdata,
        }
        return json.dumps(document, allow_nan=False) + "\n"


def _screen(line: str) -> str:
    """'|' starts perfdata: whatever text reaches a line must not contain it."""
    return line.replace("|", "\\x7c")


def _long_lines(verbose: object) -> List[str]:
    lines = [verbose] if isinstance(verbose, str) else list(verbose or [])  # type: ignore[call-overload]
    lines = [str(line) for line in lines if line]
    if len(lines) > MAX_LONG_LINES:
        cut = len(lines) - MAX_LONG_LINES + 1
        lines = [*lines[: MAX_LONG_LINES - 1], f"... {cut} more lines not shown"]
    return lines


def _range(value: object) -> Optional[str]:
    text = str(value) if value is not None else ""
    return text or None


def _metrics(check: nagiosplugin.Check) -> Dict[str, Any]:
    metrics: Dict[str, Any] = {}
    for result in check.results:
        metric = result.metric
        if metric is None or isinstance(metric.value, bool) or not isinstance(metric.value, (int, float)):
            continue
        context = metric.contextobj
        metrics[metric.name] = {
            "value": metric.value,
            "uom": metric.uom or "",
            "state": str(result.state).upper(),
            "warning": _range(getattr(context, "warning", None)),
            "critical": _range(getattr(context, "critical", None)),
            "min": metric.min,
            "max": metric.max,
        }
    return metrics


def write(text: str) -> None:
    """Write and flush; a reader that went away (EPIPE) or a full disk is
    not ours to report on stdout, so it ends the run quietly with UNKNOWN."""
    if sys.stdout is None:  # started with stdout closed: nobody to tell
        raise SystemExit(3)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError:
        _silence_stdout()
        raise SystemExit(3) from None


def _silence_stdout() -> None:
    # The interpreter flushes stdout once more at exit; point it somewhere
    # that takes the bytes, so that flush cannot print a traceback either.
    import contextlib  # noqa: PLC0415
    import os  # noqa: PLC0415

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
