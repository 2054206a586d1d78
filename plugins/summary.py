"""What every mode's status line has in common."""

from __future__ import annotations

from typing import List

import nagiosplugin

from .failures import Failure


def printable(text: str, limit: int = 60) -> str:
    """One line that is safe in a status line: control characters and the
    perfdata separator escaped, long text cut with an ellipsis."""
    out = []
    for char in text:
        if char == "|" or (ord(char) < 32 or 0x7F <= ord(char) < 0xA0):
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    flat = "".join(out)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def quoted(text: str, limit: int = 40) -> str:
    """printable() between single quotes, for showing what a server sent."""
    return f"'{printable(text, limit)}'"


def human_seconds(seconds: float) -> str:
    """0.000412 -> '0.4 ms', 1.5 -> '1.50 s': readable at a glance."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


class FastCGISummary(nagiosplugin.Summary):
    """A failure speaks for itself; a threshold breach is prefixed with the
    target so a pager message says where."""

    def __init__(self, target: object) -> None:
        self.target = target

    def problem(self, results: nagiosplugin.Results) -> str:
        result = results.first_significant
        if isinstance(result.metric and result.metric.value, Failure):
            return str(result.hint)
        return f"{self.target}: {result}"

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines = []
        for result in results:
            if result.state == nagiosplugin.Ok or isinstance(result.metric and result.metric.value, Failure):
                continue
            lines.append(f"{result.state}: {result}")
        return lines
