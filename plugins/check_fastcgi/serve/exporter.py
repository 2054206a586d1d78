"""/metrics: PHP-FPM's status page as Prometheus metrics, through a
prometheus_client custom collector: one fetch of each target's page per
scrape (single flight with concurrent scrapes, bounded like every exchange).

With ``--full``, per-process series cover at most MAX_PROCESSES workers of
each target (in the status page's order), and
``phpfpm_processes_not_exported`` counts the workers left out: a page of
50,000 processes would otherwise cost a 39 MB exposition on every scrape.

Names follow hipages/php-fpm_exporter, so its Grafana dashboards keep
working: gauges by the same names; counters, which prometheus_client and
Prometheus' conventions name ``*_total`` (promtool checks it), also under
hipages' bare names as untyped samples. Unlike that exporter,
``start_since`` and ``accepted_connections`` are not swapped, and every
fetch has a deadline.
"""

from __future__ import annotations

import time
from typing import Dict, Iterator, List, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

import fcgi_wire

from ..cgi_params import build_params
from ..fpm.status_page import PoolStatus, StatusPageError, longest_running, parse_status
from ..target import Limits, Target
from .config import TargetConfig
from .probes import Busy, Prober

#: Pool gauges: metric name, status page figure, help.
GAUGES = [
    ("start_since", "start_since", "Seconds since the pool started."),
    ("listen_queue", "listen_queue", "Connections waiting for a free worker (0 on Unix sockets)."),
    ("max_listen_queue", "max_listen_queue", "The highest listen_queue since the pool started."),
    ("listen_queue_length", "listen_queue_len", "The size of the listen backlog."),
    ("idle_processes", "idle_processes", "Workers waiting for a request."),
    ("active_processes", "active_processes", "Workers serving a request."),
    ("total_processes", "total_processes", "All workers."),
    ("max_active_processes", "max_active_processes", "The highest active_processes since the pool started."),
    ("memory_peak", "memory_peak", "The pool's peak memory in bytes (PHP 8.4 and later)."),
]
#: Pool counters: metric name (without _total), figure, help.
COUNTERS = [
    ("accepted_connections", "accepted_conn", "Requests accepted since the pool started."),
    ("max_children_reached", "max_children_reached", "Times pm.max_children stopped a new worker."),
    ("slow_requests", "slow_requests", "Requests longer than request_slowlog_timeout."),
]
#: Workers of one target with per-process series at most; the others are
#: counted in phpfpm_processes_not_exported.
MAX_PROCESSES = 1000
PROCESS_STATES = ("Idle", "Running", "Reading headers", "Getting request information", "Finishing", "Ending")


def fetch(
    target: TargetConfig, deadline: float, timeout: float, connect_timeout: Optional[float]
) -> PoolStatus:
    """The target's status page, parsed; raises on any failure."""
    query = target.status.query
    limits = Limits(timeout=timeout, deadline=deadline, connect_timeout=connect_timeout)
    response = Target(target.address, limits).request(build_params(target.status.path, query=query))
    if response.status != 200:
        raise StatusPageError(f"HTTP {response.status}")
    return parse_status(response.body)


class FpmCollector(Collector):
    """Collects every target's pool figures on each scrape."""

    def __init__(self, prober: Prober) -> None:
        self.prober = prober
        self.failures: Dict[str, int] = {target.name: 0 for target in prober.config.targets}

    def _status(self, target: TargetConfig) -> Optional[PoolStatus]:
        config = self.prober.config

        deadline = time.monotonic() + config.timeout

        def work() -> PoolStatus:
            return self.prober.bounded(
                target, lambda: fetch(target, deadline, config.timeout, config.connect_timeout), deadline
            )

        try:
            return self.prober.flights.run((target.name, "metrics"), work, config.timeout + 0.5)
        except (fcgi_wire.FastCGIError, StatusPageError, Busy):
            self.failures[target.name] += 1
            return None

    def collect(self) -> Iterator[Metric]:
        labels = ["pool", "target"]
        up = GaugeMetricFamily("phpfpm_up", "1 when the status page could be read, else 0.", labels=labels)
        failures = CounterMetricFamily(
            "phpfpm_scrape_failures", "Status page fetches that failed.", labels=["target"]
        )
        gauges = {name: GaugeMetricFamily(f"phpfpm_{name}", text, labels=labels) for name, _, text in GAUGES}
        counters = {
            name: CounterMetricFamily(f"phpfpm_{name}", text, labels=labels) for name, _, text in COUNTERS
        }
        aliases = {
            name: UnknownMetricFamily(
                f"phpfpm_{name}",
                f"{text} The same as phpfpm_{name}_total, under hipages' name.",
                labels=labels,
            )
            for name, _, text in COUNTERS
        }
        per_process = _ProcessFamilies()
        for target in self.prober.config.targets:
            status = self._status(target)
            failures.add_metric([target.name], self.failures[target.name])
            pool = status.pool if status is not None else target.name
            up.add_metric([pool, target.name], 1 if status is not None else 0)
            if status is None:
                continue
            values = [pool, target.name]
            for name, figure, _ in GAUGES:
                if figure in status.figures:
                    gauges[name].add_metric(values, status.figures[figure])
            for name, figure, _ in COUNTERS:
                if figure in status.figures:
                    counters[name].add_metric(values, status.figures[figure])
                    aliases[name].add_metric(values, status.figures[figure])
            if status.processes is not None:
                per_process.add(pool, target, status)
        yield up
        yield failures
        yield from gauges.values()
        yield from counters.values()
        yield from aliases.values()
        yield from per_process.families()


class _ProcessFamilies:
    """Per-process series of pools with --full (``full = true``)."""

    def __init__(self) -> None:
        labels = ["pool", "target", "pid"]
        self.requests = CounterMetricFamily(
            "phpfpm_process_requests", "Requests this worker served.", labels=labels
        )
        self.memory = GaugeMetricFamily(
            "phpfpm_process_last_request_memory",
            "Peak memory of the worker's last request, bytes.",
            labels=labels,
        )
        self.cpu = GaugeMetricFamily(
            "phpfpm_process_last_request_cpu", "CPU of the worker's last request, percent.", labels=labels
        )
        self.duration = GaugeMetricFamily(
            "phpfpm_process_request_duration",
            "Duration of the current (or, when idle, the last) request, microseconds as FPM reports it.",
            labels=labels,
        )
        self.state = GaugeMetricFamily(
            "phpfpm_process_state", "1 for the worker's current state.", labels=[*labels, "state"]
        )
        self.longest = GaugeMetricFamily(
            "phpfpm_longest_request_seconds",
            "The longest request running now, the status request excluded.",
            labels=["pool", "target"],
        )
        self.not_exported = GaugeMetricFamily(
            "phpfpm_processes_not_exported",
            f"Workers left out of the per-process series (at most {MAX_PROCESSES} a target).",
            labels=["pool", "target"],
        )

    def add(self, pool: str, target: TargetConfig, status: PoolStatus) -> None:
        processes = status.processes or []
        self.not_exported.add_metric([pool, target.name], max(len(processes) - MAX_PROCESSES, 0))
        for process in processes[:MAX_PROCESSES]:
            values = [pool, target.name, str(process.pid)]
            self.requests.add_metric(values, process.requests)
            self.memory.add_metric(values, process.last_request_memory)
            self.cpu.add_metric(values, process.last_request_cpu)
            self.duration.add_metric(values, round(process.request_duration * 1_000_000))
            for state in _states(process.state):
                self.state.add_metric([*values, state], 1 if state == process.state else 0)
        longest = longest_running(processes, f"{target.status.path}?{target.status.query}")
        self.longest.add_metric([pool, target.name], longest.request_duration if longest else 0.0)

    def families(self) -> List[Metric]:
        return [
            self.requests,
            self.memory,
            self.cpu,
            self.duration,
            self.state,
            self.longest,
            self.not_exported,
        ]


def _states(current: str) -> Tuple[str, ...]:
    """The known states, plus the current one when FPM has a new one
    (Creating); kept short so a hostile page cannot add labels at will."""
    return PROCESS_STATES if current in PROCESS_STATES else (*PROCESS_STATES, current[:40])
