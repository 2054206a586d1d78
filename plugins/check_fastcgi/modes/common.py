"""What the modes share: response-time thresholds and the summary rules."""

from __future__ import annotations

import nagiosplugin

from fcgi_wire._values import TYPE_CHECKING

from ..failures import Failure

if TYPE_CHECKING:
    import argparse
    from typing import Any, List, Optional


def fastcgi_check(*objects: Any) -> nagiosplugin.Check:
    """A Check named "fastcgi". Check(name=...) came with nagiosplugin
    1.4.0; Debian 12 ships 1.3.2, so the name is set after construction,
    which both take."""
    check = nagiosplugin.Check(*objects)
    check.name = "fastcgi"
    return check


def add_response_time_thresholds(group: argparse._ArgumentGroup) -> None:
    """-w/-c as ranges on the response time in seconds (handshake, ping);
    from_settings reads them with ``nagios_range``."""
    for short, long in (("-w", "--warning"), ("-c", "--critical")):
        group.add_argument(short, long, metavar="RANGE", help="response time in seconds")


def nagios_range(text: str) -> nagiosplugin.Range:
    """A threshold in Nagios range syntax; a ValueError that says so."""
    try:
        return nagiosplugin.Range(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a Nagios range (10, 10:, ~:10, 10:20, @10:20)") from None


def response_time_context(
    warning: Optional[nagiosplugin.Range] = None, critical: Optional[nagiosplugin.Range] = None
) -> nagiosplugin.ScalarContext:
    return nagiosplugin.ScalarContext("time", warning, critical, fmt_metric="response time {valueunit}")


def failure_of(result: nagiosplugin.Result) -> Optional[Failure]:
    """The failure a result reports, if it is one."""
    value = result.metric.value if result.metric is not None else None
    return value if isinstance(value, Failure) else None


class FastCGISummary(nagiosplugin.Summary):
    """A failure speaks for itself; a threshold breach is prefixed with the
    target so a pager message says where. Summaries keep no state: the
    resource a result came from is ``result.resource``."""

    def problem(self, results: nagiosplugin.Results) -> str:
        result = results.first_significant
        if failure_of(result) is not None:
            return str(result.hint)
        return f"{result.resource.target}: {result}"

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines: List[str] = []
        for result in results:
            failure = failure_of(result)
            if failure is not None:
                lines.extend(failure.details)
            elif result.state != nagiosplugin.Ok:
                lines.append(f"{result.state}: {result}")
        return lines


def range_arguments(
    warning: Optional[nagiosplugin.Range], critical: Optional[nagiosplugin.Range]
) -> List[str]:
    """-w/-c for the ranges that are set: the command line that gives them back."""
    found: List[str] = []
    for option, value in (("-w", warning), ("-c", critical)):
        if value is not None:
            found += [option, str(value)]
    return found
