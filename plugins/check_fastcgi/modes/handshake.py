"""Mode ``handshake``: one FCGI_GET_VALUES record, the lightest probe.

It proves the server speaks FastCGI without running a script. PHP-FPM answers
from a worker (so the probe waits for a free one) and reports only
FCGI_MPXS_CONNS.
"""

from __future__ import annotations

import re

import nagiosplugin

import fcgi_wire
from fcgi_wire._values import TYPE_CHECKING, Value

from ..failures import FailureContext, failure_metric, from_error
from ..text import human_seconds, printable
from . import Mode
from .common import (
    FastCGISummary,
    add_response_time_thresholds,
    fastcgi_check,
    nagios_range,
    range_arguments,
    response_time_context,
)

if TYPE_CHECKING:
    import argparse
    from typing import Iterator, List, Optional

    from ..settings import Settings
    from ..target import Target

#: Labels of our own: a value the server names "time" must not replace them.
OWN_LABELS = frozenset({"time"})

#: A management value longer than this is no count (and int() of a huge
#: string is slow or refused).
_MAX_DIGITS = 18


class HandshakeOptions(Value):
    warning: Optional[nagiosplugin.Range] = None
    critical: Optional[nagiosplugin.Range] = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HandshakeOptions:
        """The options from their settings (keys: warning, critical)."""
        return cls(
            warning=settings.parsed("warning", nagios_range),
            critical=settings.parsed("critical", nagios_range),
        )

    def arguments(self) -> List[str]:
        """Command-line arguments that give these options back."""
        return range_arguments(self.warning, self.critical)


def perfdata_label(name: str) -> str:
    """FCGI_MAX_CONNS -> max_conns; anything else reduced to \\w characters."""
    bare = name[5:] if name.upper().startswith("FCGI_") else name
    return re.sub(r"\W", "_", bare, flags=re.ASCII).lower()[:40] or "_"


def count(value: str) -> Optional[int]:
    """A management value as a whole number, if it is one."""
    if value.isascii() and value.isdecimal() and len(value) <= _MAX_DIGITS:
        return int(value)
    return None


class GetValuesProbe(nagiosplugin.Resource):
    """Asks the management values; keeps the reply for the summary."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reply: Optional[fcgi_wire.ValuesReply] = None

    @property
    def name(self) -> str:
        return "handshake"

    def probe(self) -> Iterator[nagiosplugin.Metric]:
        try:
            self.reply = reply = self.target.get_values()
        except fcgi_wire.FastCGIError as exc:
            yield failure_metric(from_error(exc, self.target.limits))
            return
        yield nagiosplugin.Metric("time", round(reply.elapsed, 6), "s", min=0, context="time")
        seen = set(OWN_LABELS)
        for name, value in sorted(reply.values.items()):
            label, number = perfdata_label(name), count(value)
            if number is not None and label not in seen:
                seen.add(label)
                yield nagiosplugin.Metric(label, number, min=0, context="default")


class HandshakeSummary(FastCGISummary):
    def ok(self, results: nagiosplugin.Results) -> str:
        resource: GetValuesProbe = results[0].resource
        reply = resource.reply
        assert reply is not None
        took = human_seconds(reply.elapsed)
        target = resource.target
        if not reply.management_supported:
            return f"{target} speaks FastCGI, but not management records (FCGI_UNKNOWN_TYPE) in {took}"
        if not reply.values:
            return f"{target} answered FCGI_GET_VALUES in {took} with no values"
        values = ", ".join(f"{name}={value}" for name, value in sorted(reply.values.items()))
        return f"{target} answered FCGI_GET_VALUES in {took}: {printable(values, 80)}"

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines = super().verbose(results)
        resource: GetValuesProbe = results[0].resource
        if resource.reply is not None:
            lines.append(f"address: {resource.target}")
            for name, value in sorted(resource.reply.values.items())[:20]:
                lines.append(f"value: {printable(name)}={printable(value)}")
        return lines


class Handshake(Mode):
    name = "handshake"
    help = "send one FCGI_GET_VALUES record: does the server speak FastCGI?"
    description = """\
Sends one FCGI_GET_VALUES record (request id 0) asking for FCGI_MAX_CONNS,
FCGI_MAX_REQS and FCGI_MPXS_CONNS, and is OK when FCGI_GET_VALUES_RESULT (or
FCGI_UNKNOWN_TYPE) comes back. No script runs. PHP-FPM answers from a worker,
so this waits for a free one; for PHP-FPM the ping mode is the better probe."""
    options_type = HandshakeOptions
    perfdata = (
        ("time", "s", "time from connect to the answer"),
        ("max_conns", "", "FCGI_MAX_CONNS, when the server reports it"),
        ("max_reqs", "", "FCGI_MAX_REQS, when the server reports it"),
        ("mpxs_conns", "", "FCGI_MPXS_CONNS (0 or 1), when the server reports it"),
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_response_time_thresholds(parser.add_argument_group("thresholds"))

    def check(self, options: HandshakeOptions, target: Target) -> nagiosplugin.Check:
        return fastcgi_check(
            GetValuesProbe(target),
            response_time_context(options.warning, options.critical),
            FailureContext(),
            HandshakeSummary(),
        )


MODE = Handshake()
