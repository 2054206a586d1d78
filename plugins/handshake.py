"""Mode ``handshake``: one FCGI_GET_VALUES record, the lightest probe.

It proves the server speaks FastCGI without running a script. PHP-FPM answers
from a worker (so the probe waits for a free one) and reports only
FCGI_MPXS_CONNS.
"""

from __future__ import annotations

import argparse
import re
from typing import Iterator, List, Optional

import nagiosplugin

import fcgi_wire

from .failures import FailureContext, failure_metric
from .summary import FastCGISummary, human_seconds, printable
from .target import Target

HELP = "send one FCGI_GET_VALUES record: does the server speak FastCGI?"
DESCRIPTION = """\
Sends one FCGI_GET_VALUES record (request id 0) asking for FCGI_MAX_CONNS,
FCGI_MAX_REQS and FCGI_MPXS_CONNS, and is OK when FCGI_GET_VALUES_RESULT (or
FCGI_UNKNOWN_TYPE) comes back. No script runs. PHP-FPM answers from a worker,
so this waits for a free one; for PHP-FPM the ping mode is the better probe."""

PERFDATA = [
    ("time", "s", "time from connect to the answer"),
    ("max_conns", "", "FCGI_MAX_CONNS, when the server reports it"),
    ("max_reqs", "", "FCGI_MAX_REQS, when the server reports it"),
    ("mpxs_conns", "", "FCGI_MPXS_CONNS (0 or 1), when the server reports it"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("thresholds")
    group.add_argument(
        "-w", "--warning", metavar="RANGE", type=nagiosplugin.Range, help="response time in seconds"
    )
    group.add_argument(
        "-c", "--critical", metavar="RANGE", type=nagiosplugin.Range, help="response time in seconds"
    )


def perfdata_label(name: str) -> str:
    """FCGI_MAX_CONNS -> max_conns; anything else reduced to \\w characters."""
    bare = name[5:] if name.upper().startswith("FCGI_") else name
    return re.sub(r"\W", "_", bare).lower()


class GetValues(nagiosplugin.Resource):
    def __init__(self, target: Target) -> None:
        self.target = target
        self.reply: Optional[fcgi_wire.ValuesReply] = None

    @property
    def name(self) -> str:
        return "handshake"

    def probe(self) -> Iterator[nagiosplugin.Metric]:
        target = self.target
        try:
            self.reply = reply = fcgi_wire.get_values(target.address, **target.limits())
        except fcgi_wire.FastCGIError as exc:
            yield failure_metric(exc)
            return
        yield nagiosplugin.Metric("time", round(reply.elapsed, 6), "s", min=0, context="time")
        for name, value in sorted(reply.values.items()):
            if value.isdigit():
                yield nagiosplugin.Metric(perfdata_label(name), int(value), min=0, context="default")


class HandshakeSummary(FastCGISummary):
    def __init__(self, resource: GetValues) -> None:
        super().__init__(resource.target)
        self.resource = resource

    def ok(self, results: nagiosplugin.Results) -> str:
        reply = self.resource.reply
        assert reply is not None
        took = human_seconds(reply.elapsed)
        if not reply.management_supported:
            return f"{self.target} speaks FastCGI, but not management records (FCGI_UNKNOWN_TYPE) in {took}"
        if not reply.values:
            return f"{self.target} answered FCGI_GET_VALUES in {took} with no values"
        values = ", ".join(f"{name}={value}" for name, value in sorted(reply.values.items()))
        return f"{self.target} answered FCGI_GET_VALUES in {took}: {printable(values, 80)}"

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines = super().verbose(results)
        reply = self.resource.reply
        if reply is not None:
            lines.append(f"address: {self.target}")
            for name, value in sorted(reply.values.items()):
                lines.append(f"value: {printable(name)}={printable(value)}")
        return lines


def build_check(
    args: argparse.Namespace, target: Target, timeout_state: nagiosplugin.state.ServiceState
) -> nagiosplugin.Check:
    resource = GetValues(target)
    return nagiosplugin.Check(
        resource,
        nagiosplugin.ScalarContext(
            "time", args.warning, args.critical, fmt_metric="response time {valueunit}"
        ),
        FailureContext(timeout_state),
        HandshakeSummary(resource),
        name="fastcgi",
    )
