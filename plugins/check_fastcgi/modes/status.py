"""Mode ``status``: PHP-FPM's status page as metrics, with Nagios-range
thresholds on any of them, stuck-worker detection and counter rates."""

from __future__ import annotations

import os
import time

import nagiosplugin
from nagiosplugin.state import Critical, Unknown

import fcgi_wire
from fcgi_wire._values import TYPE_CHECKING, Value

from ..failures import Failure, FailureContext, failure_metric, from_error
from ..fpm.rates import COUNTERS, default_state_dir, rates, state_file_name
from ..fpm.status_page import (
    NoStatusPage,
    NotAStatusPage,
    PoolStatus,
    Process,
    StatusPageHTTPError,
    fetch_status,
    longest_running,
    status_query,
)
from ..target import UsageError
from ..text import human_seconds, printable, quoted
from . import Mode
from .common import FastCGISummary, fastcgi_check, nagios_range

if TYPE_CHECKING:
    import argparse
    from typing import Dict, Iterator, List, Mapping, Optional, Tuple

    from ..fpm.rates import MemoryRates
    from ..settings import Settings
    from ..target import Target

DEFAULT_PATH = "/status"

#: (label, uom, help) in the order the summary and help present them.
METRICS: List[Tuple[str, str, str]] = [
    ("active_processes", "", "workers serving a request (the status request included)"),
    ("idle_processes", "", "workers waiting for a request"),
    ("total_processes", "", "all workers"),
    ("active_percent", "%", "100 x active / total, or / --max-children"),
    ("listen_queue", "", "connections waiting for a worker (0 on Unix sockets)"),
    ("max_listen_queue", "", "highest listen_queue since start (0 on Unix sockets)"),
    ("listen_queue_len", "", "size of the listen backlog (0 on Unix sockets)"),
    ("max_active_processes", "", "highest active_processes since start"),
    ("accepted_conn", "c", "requests accepted since start"),
    ("max_children_reached", "c", "times pm.max_children stopped a new worker"),
    ("slow_requests", "c", "requests longer than request_slowlog_timeout"),
    ("accepted_conn_rate", "", "accepted_conn per second since the last run"),
    ("max_children_reached_rate", "", "max_children_reached per second since the last run"),
    ("slow_requests_rate", "", "slow_requests per second since the last run"),
    ("start_since", "s", "seconds since the pool started"),
    ("longest_request", "s", "longest running request, status request excluded (--full)"),
    ("memory_peak", "B", "peak memory of the pool (PHP 8.4 and later)"),
]
METRIC_NAMES = [name for name, _, _ in METRICS]
UOM = {name: uom for name, uom, _ in METRICS}
LISTEN_QUEUE_METRICS = ("listen_queue", "max_listen_queue", "listen_queue_len")

PERFDATA = [("time", "s", "time to fetch the status page"), *METRICS]

#: Long output lists busy processes up to this many.
MAX_PROCESS_LINES = 20


#: FPM keeps pm.max_children in a C int.
MAX_CHILDREN = 2**31 - 1


def threshold(text: str) -> Tuple[str, nagiosplugin.Range]:
    """-w/-c METRIC=RANGE; a ValueError that says what is wrong."""
    metric, equals, spec = text.partition("=")
    if not equals:
        raise ValueError(f"{text!r} is not METRIC=RANGE (e.g. active_percent=80)")
    return metric_range(metric, spec)


def metric_range(metric: str, spec: str) -> Tuple[str, nagiosplugin.Range]:
    metric = metric.strip()
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric[:40]!r}; valid: {', '.join(METRIC_NAMES)}")
    return metric, nagios_range(spec)


def thresholds(settings: Settings, key: str) -> Dict[str, nagiosplugin.Range]:
    """-w/-c: METRIC=RANGE strings (the command line's, repeatable), or a
    table of METRIC = RANGE (serve's TOML, where a range may be a number).
    A metric given twice is refused, never the last one silently winning."""
    value = settings.values.get(key)
    where = settings.name(key)
    if isinstance(value, str):
        raise UsageError(f"{where} must be a table, not {value[:20]!r}")
    if isinstance(value, dict):
        pairs = [settings.parse(key, _table_entry, (metric, spec)) for metric, spec in value.items()]
    else:
        pairs = settings.each(key, threshold)
    found: Dict[str, nagiosplugin.Range] = {}
    for metric, limit in pairs:
        if metric in found:
            raise UsageError(f"{where} {metric} is given twice ({found[metric]} and {limit}): keep one")
        found[metric] = limit
    return found


def _table_entry(entry: Tuple[str, object]) -> Tuple[str, nagiosplugin.Range]:
    """METRIC = RANGE in a TOML table, where a range may be a number."""
    metric, spec = entry
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise ValueError(f"{metric} must be a range, not {str(spec)[:20]!r}")
    return metric_range(metric, str(spec))


class StatusOptions(Value):
    path: str = DEFAULT_PATH
    full: bool = False
    pool: Optional[str] = None
    max_children: Optional[int] = None
    state_file: Optional[str] = None
    warning: Mapping[str, nagiosplugin.Range] = {}
    critical: Mapping[str, nagiosplugin.Range] = {}
    #: Where rates keep the previous sample instead of the state file: a
    #: long-running process's own (check_fastcgi serve passes one per
    #: target). None, as on the command line: the state file.
    rate_store: Optional[MemoryRates] = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StatusOptions:
        """The options from their settings, keyed as the command line's
        destinations: path, full, pool, max_children, state_file, warning,
        critical (see ``thresholds``)."""
        warning, critical = thresholds(settings, "warning"), thresholds(settings, "critical")
        full = settings.flag("full")
        if "longest_request" in {**warning, **critical} and not full:
            raise UsageError("a threshold on longest_request needs --full")
        return cls(
            path=settings.text("path", DEFAULT_PATH),
            full=full,
            pool=settings.optional_text("pool"),
            max_children=settings.count("max_children", 1, MAX_CHILDREN),
            state_file=settings.optional_text("state_file"),
            warning=warning,
            critical=critical,
        )

    def arguments(self) -> List[str]:
        """Command-line arguments that give these options back."""
        found: List[str] = []
        if self.path != DEFAULT_PATH:
            found += ["--path", self.path]
        if self.full:
            found.append("--full")
        if self.pool is not None:
            found += ["--pool", self.pool]
        if self.max_children is not None:
            found += ["--max-children", str(self.max_children)]
        if self.state_file is not None:
            found += ["--state-file", self.state_file]
        for option, ranges in (("-w", self.warning), ("-c", self.critical)):
            for metric, limit in ranges.items():
                found += [option, f"{metric}={limit}"]
        return found

    @property
    def query(self) -> str:
        return status_query(self.full)


class StatusPageProbe(nagiosplugin.Resource):
    """Fetches and reads the page; keeps the pool status for the summary."""

    def __init__(self, target: Target, options: StatusOptions) -> None:
        self.target = target
        self.options = options
        self.status: Optional[PoolStatus] = None
        self.longest: Optional[Process] = None
        self.notes: List[str] = []
        self.fetched_at = 0.0

    @property
    def name(self) -> str:
        return "status"

    def probe(self) -> Iterator[nagiosplugin.Metric]:
        options = self.options
        where = f"{self.target} {printable(options.path)}"
        try:
            response, status = fetch_status(self.target, options.path, options.full)
        except fcgi_wire.FastCGIError as exc:
            yield failure_metric(from_error(exc, self.target.limits))
            return
        except NoStatusPage as exc:
            yield _problem(
                Unknown,
                f"no status page at {where} (HTTP {exc.status}): "
                f"is pm.status_path = {printable(options.path)} set in the pool? "
                "else give its path with --path",
            )
            return
        except StatusPageHTTPError as exc:
            yield _problem(
                Critical, f"status page at {where} answered HTTP {exc.status}: {quoted(exc.excerpt)}"
            )
            return
        except NotAStatusPage as exc:
            yield _problem(Unknown, f"{where} is not a PHP-FPM status page ({exc}): {quoted(exc.excerpt)}")
            return
        self.fetched_at = time.time()
        self.status = status
        self.notes.extend(status.repairs)
        if options.pool is not None and status.pool != options.pool:
            yield _problem(
                Critical,
                f"{self.target} serves pool {quoted(status.pool)}, expected {quoted(options.pool)} "
                "(socket wired to the wrong pool?)",
            )
        yield nagiosplugin.Metric("time", round(response.elapsed, 6), "s", min=0, context="time")
        yield from self._figures(status)
        yield from self._longest_request(status)
        yield from self._rates(status)

    def _figures(self, status: PoolStatus) -> Iterator[nagiosplugin.Metric]:
        max_children = self.options.max_children
        for name, value in status.figures.items():
            bounded = name in ("active_processes", "idle_processes", "total_processes")
            yield nagiosplugin.Metric(
                name, value, UOM[name], min=0, max=max_children if bounded else None, context=name
            )
        active, total = status.figures["active_processes"], status.figures["total_processes"]
        base = max_children or total
        percent = round(100.0 * active / base, 1) if base else 0.0
        yield nagiosplugin.Metric("active_percent", percent, "%", min=0, max=100, context="active_percent")

    def _longest_request(self, status: PoolStatus) -> Iterator[nagiosplugin.Metric]:
        if not self.options.full:
            return
        if status.processes is None:
            self.notes.append("longest_request unknown: no process list")
            return
        self.longest = longest_running(status.processes, f"{self.options.path}?{self.options.query}")
        seconds = self.longest.request_duration if self.longest else 0.0
        yield nagiosplugin.Metric("longest_request", round(seconds, 6), "s", min=0, context="longest_request")

    def _rates(self, status: PoolStatus) -> Iterator[nagiosplugin.Metric]:
        options = self.options
        counters = {name: status.figures[name] for name in COUNTERS if name in status.figures}
        if options.rate_store is not None:
            found, why_not = options.rate_store.rates(
                f"{options.path}\0{status.pool}", status.start_time, counters, self.fetched_at
            )
        else:
            found, why_not = self._file_rates(status, counters)
        if why_not:
            self.notes.append(why_not)
        for name, value in found.items():
            yield nagiosplugin.Metric(name, round(value, 4), min=0, context=name)

    def _file_rates(
        self, status: PoolStatus, counters: Dict[str, int]
    ) -> Tuple[Dict[str, float], Optional[str]]:
        options = self.options
        # Our own default directory: whatever lies in it is ours to replace.
        private_dir = not options.state_file
        path = options.state_file or os.path.join(
            default_state_dir(), state_file_name(str(self.target), options.path, status.pool)
        )
        return rates(
            path,
            status.start_time,
            counters,
            self.fetched_at,
            deadline=self.target.limits.deadline,
            private_dir=private_dir,
        )


def _problem(state: nagiosplugin.state.ServiceState, text: str) -> nagiosplugin.Metric:
    """A failure found in a reply that arrived."""
    return failure_metric(Failure(state, text))


class StatusSummary(FastCGISummary):
    def __init__(self, listen_queue_caveat: bool) -> None:
        self.listen_queue_caveat = listen_queue_caveat

    def _pool_line(self, resource: StatusPageProbe, results: nagiosplugin.Results) -> str:
        status = resource.status
        assert status is not None
        figures = status.figures
        parts = [
            f"{figures['active_processes']} active",
            f"{figures['idle_processes']} idle",
            f"{figures['total_processes']} total",
            f"listen queue {figures.get('listen_queue', 0)}",
        ]
        rate = results["accepted_conn_rate"].metric if "accepted_conn_rate" in results else None
        if rate is not None:
            parts.append(f"{rate.value:.3g} req/s")
        longest = resource.longest
        if longest is not None:
            parts.append(
                f"longest request {human_seconds(longest.request_duration)} "
                f"(pid {longest.pid} {printable(longest.request_method, 10)} "
                f"{printable(longest.request_uri, 50)})"
            )
        line = ", ".join(parts)
        if self.listen_queue_caveat:
            line += " (listen queue figures read 0 over a Unix socket)"
        return line

    def ok(self, results: nagiosplugin.Results) -> str:
        resource: StatusPageProbe = results[0].resource
        assert resource.status is not None
        return f"pool {printable(resource.status.pool)}: {self._pool_line(resource, results)}"

    def problem(self, results: nagiosplugin.Results) -> str:
        first = results.first_significant
        resource: StatusPageProbe = first.resource
        if resource.status is None or first.context.name == "failure":
            return super().problem(results)
        return f"pool {printable(resource.status.pool)}: {first}; {self._pool_line(resource, results)}"

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines = super().verbose(results)
        resource: StatusPageProbe = results[0].resource
        status = resource.status
        if status is None:
            return lines
        manager, page = printable(status.process_manager), printable(resource.options.path)
        lines.append(f"pool: {printable(status.pool)} ({manager}), page {resource.target} {page}")
        lines.extend(f"note: {note}" for note in resource.notes)
        if resource.target.is_unix:
            lines.append(
                "note: listen_queue, max_listen_queue and listen_queue_len read 0 over a Unix socket"
            )
        busy = [process for process in status.processes or [] if process.state != "Idle"]
        for process in busy[:MAX_PROCESS_LINES]:
            lines.append(
                f"process: pid {process.pid} {printable(process.state, 30)} "
                f"{human_seconds(process.request_duration)} "
                f"{printable(process.request_method, 10)} {printable(process.request_uri, 200)}"
            )
        if len(busy) > MAX_PROCESS_LINES:
            lines.append(f"process: ... {len(busy) - MAX_PROCESS_LINES} more busy processes")
        return lines


class Status(Mode):
    name = "status"
    help = "read PHP-FPM's status page: thresholds on any pool metric, stuck workers, rates"
    description = """\
Requests PHP-FPM's status page (pm.status_path, default /status) as JSON and
reports every pool figure as perfdata. -w and -c take METRIC=RANGE in Nagios
range syntax (10, 10:, ~:10, 10:20, @10:20) and may be repeated. Counter rates
are computed from the previous run, kept in a state file. Listen-queue figures
read 0 over a Unix socket (a PHP-FPM limitation)."""
    options_type = StatusOptions
    perfdata = PERFDATA

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        page = parser.add_argument_group("status page")
        page.add_argument("--path", help="the pool's pm.status_path (default /status)")
        page.add_argument("--full", action="store_true", help="ask for the process list: longest_request")
        page.add_argument("--pool", metavar="NAME", help="CRITICAL when the page reports another pool")
        page.add_argument(
            "--max-children", metavar="N", help="the pool's pm.max_children, for active_percent"
        )
        page.add_argument(
            "--state-file", metavar="PATH", help="where rates keep the last sample (default: per user)"
        )
        limits = parser.add_argument_group("thresholds")
        for short, long, which in (("-w", "--warning", "warning"), ("-c", "--critical", "critical")):
            limits.add_argument(
                short,
                long,
                action="append",
                default=[],
                metavar="METRIC=RANGE",
                help=f"{which} range for a metric; repeatable",
            )

    def check(self, options: StatusOptions, target: Target) -> nagiosplugin.Check:
        warning, critical = options.warning, options.critical
        contexts = [
            nagiosplugin.ScalarContext(name, warning.get(name), critical.get(name)) for name in METRIC_NAMES
        ]
        caveat = target.is_unix and any(name in LISTEN_QUEUE_METRICS for name in {**warning, **critical})
        return fastcgi_check(
            StatusPageProbe(target, options),
            *contexts,
            nagiosplugin.ScalarContext("time", fmt_metric="response time {valueunit}"),
            FailureContext(),
            StatusSummary(caveat),
        )


MODE = Status()
