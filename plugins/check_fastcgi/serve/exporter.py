"""/metrics: PHP-FPM's status page as Prometheus metrics, through a
prometheus_client custom collector: one fetch of each target's page per
scrape (single flight with concurrent scrapes, bounded like every exchange).

Fan-out and one deadline
------------------------
A scrape fetches its targets' pages in parallel, through one small thread
pool of the server's (``--scrape-concurrency``, default 8; made once, not
per scrape, and shared by every scrape): at most that many status
exchanges are under way at once, all scrapes together, so scraping never
holds more FPM workers than that host-wide. The scrape ends by its own
deadline: Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds`` (else
``--scrape-timeout``, default 10 s) less a margin for writing the answer
(a tenth of it, 0.5 s at most). Each exchange is bounded by ``-t`` as
well, and takes its turn under ``max_inflight`` and single flight through
the path of every probe (``Prober.exchange``). A target not done by then
is ``phpfpm_up 0`` in that scrape and counted in
``phpfpm_scrape_failures_total`` and ``phpfpm_scrape_timeouts_total``;
the others are all there.

Hung targets (a socket that accepts and never answers) must not keep the
threads from the healthy ones: each exchange, as it starts, gets at most
its fair share of the time left, the time left times the threads over the
targets not started yet (and never more than -t), so every target gets its
turn before the deadline however many hang; as the quick ones finish, the
share of those still to come grows. Targets that missed the previous
deadline are started last, where their shares are large: a slow pool cut
short once has all the time left in the next scrape.

How the deadline reaches collect(): prometheus_client's generate_latest
calls it without arguments, so each scrape builds a collector of its own
(ScrapeCollector, which holds the deadline) in a registry of its own
(Exporter.registry). Chosen over a thread-local that the HTTP handler sets:
the deadline is an argument one can see, nothing of one scrape can leak
into another, and it stays right should prometheus_client ever collect in
another thread. What lasts from scrape to scrape (failure counters, each
target's pool name) is the Exporter's, under its lock.

Stable series
-------------
A target's series carry ``pool`` and ``target`` whether it is up or down:
``pool`` is the configured one (the TOML ``pool`` setting, or the pool's
name under ``--discover``), else the pool its last good page named, else
(never read yet) the target's name. A page that names another pool than
the configured one is a failure (``phpfpm_up 0``), never figures under the
wrong name.

Per-process series
------------------
Only with ``--full``; at most MAX_PROCESSES workers of each target (in the
status page's order), ``phpfpm_processes_not_exported`` counting the
workers left out (a page of 50,000 processes would otherwise cost a 39 MB
exposition on every scrape). They are labelled by ``slot``, the worker's
index in the page's process list, not by pid: FPM lists its scoreboard in
slot order and a new worker takes the slot of the one it replaces, so the
label values stay within 0..max_children-1 however many workers
``pm.max_requests`` or crashes recycle, where every new pid left a series
behind. (An aggregate by state would be as bounded, but would lose the
per-worker duration and memory that dashboards of stuck workers read.) The
pid is still there, as the value of ``phpfpm_process_pid``.

Names follow hipages/php-fpm_exporter, so its Grafana dashboards keep
working: gauges by the same names; counters, which prometheus_client and
Prometheus' conventions name ``*_total`` (promtool checks it), also under
hipages' bare names as untyped samples. Unlike that exporter,
``start_since`` and ``accepted_connections`` are not swapped, and every
fetch has a deadline.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Dict, Iterator, List, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

import fcgi_wire
from fcgi_wire._values import Value

from ..fpm.status_page import PoolStatus, StatusPageError, fetch_status, longest_running
from ..target import Limits, Target
from ..text import printable
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

#: A scrape ends this share of its time early, at most MARGIN seconds:
#: time to write the exposition and for it to reach Prometheus.
MARGIN_SHARE = 0.1
MARGIN = 0.5
#: A scrape timeout header outside (0, this] is ignored (the default holds).
MAX_SCRAPE_TIMEOUT = 3600.0

#: Why a fetch failed, as phpfpm_scrape_failures counts them; a TIMEOUT is
#: counted in phpfpm_scrape_timeouts too.
TIMEOUT = "timeout"
ERROR = "error"
WRONG_POOL = "wrong pool"


def scrape_deadline(header: Optional[str], default: float, now: float) -> float:
    """When a scrape's exposition must be ready (time.monotonic()): the
    time Prometheus gives it (X-Prometheus-Scrape-Timeout-Seconds), or
    ``default``, less the margin. A header that is no number of seconds in
    (0, MAX_SCRAPE_TIMEOUT] (``nan``, ``-1``, ``1e400``) is ignored."""
    seconds = default
    if header is not None:
        try:
            value = float(header.strip())
        except ValueError:
            value = math.nan
        if math.isfinite(value) and 0 < value <= MAX_SCRAPE_TIMEOUT:
            seconds = value
    return now + seconds - min(MARGIN, seconds * MARGIN_SHARE)


def fetch(
    target: TargetConfig, deadline: float, timeout: float, connect_timeout: Optional[float]
) -> PoolStatus:
    """The target's status page, parsed; raises fcgi_wire's errors and
    StatusPageErrors (fpm.status_page.fetch_status)."""
    limits = Limits(timeout=timeout, deadline=deadline, connect_timeout=connect_timeout)
    return fetch_status(Target(target.address_for("status"), limits), target.status.path, target.status.full)[
        1
    ]


class Fetched(Value):
    """One target's page in one scrape, or why there is none."""

    status: Optional[PoolStatus]
    failure: Optional[str] = None


class _Shares:
    """One scrape's division of its time among the exchanges not started yet."""

    def __init__(self, targets: int, threads: int) -> None:
        self._lock = threading.Lock()
        self._waiting = targets
        self._threads = threads

    def take(self, left: float) -> float:
        """The share of an exchange that starts with ``left`` seconds to go."""
        with self._lock:
            share = left * self._threads / max(self._waiting, 1)
            self._waiting -= 1
        return share


class _Seen:
    """What the exporter keeps of a target from scrape to scrape."""

    __slots__ = ("failures", "late", "pool", "timeouts")

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.failures = 0
        self.timeouts = 0
        #: It missed the previous scrape's deadline: started last.
        self.late = False


class Exporter:
    """The scrapes of one server: its thread pool and what lasts between
    scrapes. Safe to use from many threads."""

    def __init__(self, prober: Prober) -> None:
        self.prober = prober
        config = prober.config
        self._executor = ThreadPoolExecutor(
            max_workers=config.scrape_concurrency, thread_name_prefix="scrape"
        )
        self._lock = threading.Lock()
        self._seen = {target.name: _Seen(target.status.pool or target.name) for target in config.targets}

    def registry(self, deadline: float) -> CollectorRegistry:
        """A registry for one scrape that must be done by ``deadline``."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ScrapeCollector(self, deadline))
        return registry

    def close(self) -> None:
        """Cancel what has not started; wait for what has (each exchange is
        bounded by its deadline)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def fetch_all(self, deadline: float) -> Tuple[Dict[str, Fetched], Dict[str, Tuple[str, int, int]]]:
        """Every target's page, or why not, by ``deadline``; and each
        target's (pool label, failures, timeouts) after this scrape."""
        targets = self.prober.config.targets
        with self._lock:
            order = sorted(targets, key=lambda target: self._seen[target.name].late)
        shares = _Shares(len(order), min(self.prober.config.scrape_concurrency, len(order)))
        futures: Dict[Future[Fetched], str] = {}
        for target in order:
            futures[self._executor.submit(self._fetch, target, deadline, shares)] = target.name
        done, pending = wait(futures, timeout=max(deadline - time.monotonic(), 0.0))
        for future in pending:
            future.cancel()  # not started yet: never will; started ones end by the deadline
        results = {futures[future]: future.result() for future in done}
        with self._lock:
            for target in targets:
                fetched = results.setdefault(target.name, Fetched(None, TIMEOUT))
                seen = self._seen[target.name]
                seen.late = fetched.failure == TIMEOUT
                if fetched.status is not None:
                    seen.pool = target.status.pool or fetched.status.pool
                    continue
                seen.failures += 1
                seen.timeouts += fetched.failure == TIMEOUT
            labels = {name: (seen.pool, seen.failures, seen.timeouts) for name, seen in self._seen.items()}
        return results, labels

    def _fetch(self, target: TargetConfig, scrape_deadline: float, shares: _Shares) -> Fetched:
        """In a thread of the pool: one target's page within its share of
        the scrape's time, the scrape's deadline and -t. Never raises."""
        config = self.prober.config
        now = time.monotonic()
        if now >= scrape_deadline:
            return Fetched(None, TIMEOUT)
        deadline = min(scrape_deadline, now + config.timeout, now + shares.take(scrape_deadline - now))
        try:
            status = self.prober.exchange(
                target,
                (target.name, "metrics"),
                lambda: fetch(target, deadline, config.timeout, config.connect_timeout),
                deadline,
            )
        except (fcgi_wire.Timeout, Busy):
            return Fetched(None, TIMEOUT)
        except (fcgi_wire.FastCGIError, StatusPageError):
            return Fetched(None, ERROR)
        except Exception as exc:  # a bug of ours must cost this target only
            line = printable(f"metrics of {target.name}: internal error: {type(exc).__name__}: {exc}", 1000)
            self.prober.log.write(f"<4>{line}\n")
            self.prober.log.flush()
            return Fetched(None, ERROR)
        if target.status.pool is not None and status.pool != target.status.pool:
            return Fetched(None, WRONG_POOL)
        return Fetched(status)


class ScrapeCollector(Collector):
    """One scrape: every target's figures, collected by its deadline."""

    def __init__(self, exporter: Exporter, deadline: float) -> None:
        self.exporter = exporter
        self.deadline = deadline

    def collect(self) -> Iterator[Metric]:
        results, seen = self.exporter.fetch_all(self.deadline)
        labels = ["pool", "target"]
        up = GaugeMetricFamily("phpfpm_up", "1 when the status page could be read, else 0.", labels=labels)
        failures = CounterMetricFamily(
            "phpfpm_scrape_failures", "Status page fetches that failed, timeouts included.", labels=labels
        )
        timeouts = CounterMetricFamily(
            "phpfpm_scrape_timeouts",
            "Status page fetches not done by the scrape's deadline or -t.",
            labels=labels,
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
        for target in self.exporter.prober.config.targets:
            status = results[target.name].status
            pool, failed, late = seen[target.name]
            values = [pool, target.name]
            up.add_metric(values, 1 if status is not None else 0)
            failures.add_metric(values, failed)
            timeouts.add_metric(values, late)
            if status is None:
                continue
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
        yield timeouts
        yield from gauges.values()
        yield from counters.values()
        yield from aliases.values()
        yield from per_process.families()


class _ProcessFamilies:
    """Per-process series of pools with --full (``full = true``), by slot."""

    def __init__(self) -> None:
        labels = ["pool", "target", "slot"]
        self.pid = GaugeMetricFamily(
            "phpfpm_process_pid", "The pid of the worker in this slot of the process list.", labels=labels
        )
        self.requests = CounterMetricFamily(
            "phpfpm_process_requests", "Requests the worker in this slot served.", labels=labels
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
        for slot, process in enumerate(processes[:MAX_PROCESSES]):
            values = [pool, target.name, str(slot)]
            self.pid.add_metric(values, process.pid)
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
            self.pid,
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
