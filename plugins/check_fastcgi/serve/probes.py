"""Probing targets from a long-running process.

A probe runs the same check as the plugin (the mode's nagiosplugin Check),
in the calling thread, and renders it as the plugin would print it. Around
it, what a server needs and a one-shot process does not:

- single flight: concurrent probes of the same target and mode share one
  FastCGI exchange, so a probe storm costs one worker, not one each;
- a bound: at most ``max_inflight`` exchanges to one target at a time
  (each holds an FPM worker until it ends), waiting no longer than -t;
  ``Prober.exchange`` is the one path to both, for probes and for
  /metrics' status fetches (exporter) alike, each with its own deadline;
- an optional cache (``cache_ttl``) of the last outcome;
- the last outcome of each target and mode, for /health, and one log line
  whenever a target's state changes;
- rates of its own: /status keeps each target's previous sample in this
  process (MemoryRates), never in the state file of the one-shot checks,
  so that neither takes the other's sample for its own previous run.

No FastCGI connection outlives its exchange: fcgi_wire closes it, and a
kept connection would hold an FPM worker.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Dict, Hashable, Optional, TextIO, Tuple, TypeVar

from fcgi_wire._values import Value

from ..fpm.rates import MemoryRates
from ..modes import load
from ..output import Output
from ..target import Limits, Target
from .config import ServeConfig, TargetConfig

MODES = ("ping", "status", "handshake")
T = TypeVar("T")

#: A probe that shares another's exchange waits for its outcome this long
#: past its own deadline: the check's text is made after the exchange ends
#: (a check never outlives -t by more than half a second).
OUTCOME_GRACE = 0.5


class Lazy:
    """A text made on its first use, once, whichever thread asks first: a
    probe's JSON document costs as much as its check's text, and most
    probes are never asked for it."""

    __slots__ = ("_lock", "_make", "_text")

    def __init__(self, make: Callable[[], str]) -> None:
        self._lock = threading.Lock()
        self._make: Optional[Callable[[], str]] = make
        self._text = ""

    def __call__(self) -> str:
        with self._lock:
            if self._make is not None:
                self._text = self._make()
                self._make = None  # and what it held (the check) with it
            return self._text


class Outcome(Value):
    """What one check of one target said."""

    target: str
    mode: str
    state: str  # OK, WARNING, CRITICAL, UNKNOWN
    text: str  # the plugin's output, Nagios style
    json: Lazy  # the same as --format json, made when first asked for
    at: float  # time.monotonic() when it finished
    elapsed: float

    @property
    def document(self) -> str:
        return self.json()

    @property
    def healthy(self) -> bool:
        """What an HTTP prober should hear: 200 for OK and WARNING."""
        return self.state in ("OK", "WARNING")


class Busy(Exception):
    """No exchange could start or finish within the deadline."""


class _Flight:
    """One piece of work in flight, and whoever waits for it: ``done`` is
    held until the work ends (a lock, cheaper to make than an Event; each
    waiter that gets it hands it on)."""

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.value: object = None
        self.error: Optional[BaseException] = None


class SingleFlight:
    """Concurrent calls with the same key share one run of the work: the
    first runs it, the others wait (at most ``timeout``) for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: Dict[Hashable, _Flight] = {}

    def run(self, key: Hashable, work: Callable[[], T], timeout: float) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if leader:
            try:
                flight.value = work()
            except BaseException as exc:
                flight.error = exc
            finally:
                with self._lock:
                    del self._flights[key]
                flight.done.release()
        elif flight.done.acquire(timeout=timeout):
            flight.done.release()  # to the next waiter
        else:
            raise Busy("the exchange in flight did not finish in time")
        if flight.error is not None:
            raise flight.error
        return flight.value  # type: ignore[return-value]


class Prober:
    """Runs checks of the configured targets; safe to call from many threads."""

    def __init__(self, config: ServeConfig, log: Optional[TextIO] = None) -> None:
        self.config = config
        self.log = log if log is not None else sys.stderr
        self.flights = SingleFlight()
        self._lock = threading.Lock()
        self._latest: Dict[Tuple[str, str], Outcome] = {}
        self._bounds = {
            target.name: threading.BoundedSemaphore(config.max_inflight) for target in config.targets
        }
        self._rates = {target.name: MemoryRates() for target in config.targets}

    def latest(self) -> Dict[Tuple[str, str], Outcome]:
        with self._lock:
            return dict(self._latest)

    def exchange(
        self,
        target: TargetConfig,
        key: Hashable,
        work: Callable[[], T],
        deadline: float,
        grace: float = 0.0,
    ) -> T:
        """``work`` (an exchange with ``target`` bounded by ``deadline``), run
        once for every caller with the same ``key`` at the same time (single
        flight): the caller that runs it first waits for a turn among the
        target's max_inflight until ``deadline``; the others wait for its
        result until ``deadline`` (plus ``grace``). Busy when the turn or the
        result does not come in time."""

        def in_turn() -> T:
            bound = self._bounds[target.name]
            if not bound.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                raise Busy(f"{self.config.max_inflight} exchanges with {target.name} in flight already")
            try:
                return work()
            finally:
                bound.release()

        return self.flights.run(key, in_turn, max(deadline + grace - time.monotonic(), 0.0))

    def probe(self, target: TargetConfig, mode: str) -> Outcome:
        key = (target.name, mode)
        ttl = self.config.cache_ttl
        if ttl > 0:
            with self._lock:
                cached = self._latest.get(key)
            if cached is not None and time.monotonic() - cached.at < ttl:
                return cached
        # One deadline for the whole probe: the wait for a turn and the
        # exchange share -t, so a probe never takes longer than -t.
        deadline = time.monotonic() + self.config.timeout
        try:
            outcome = self.exchange(
                target, key, lambda: self.run_check(target, mode, deadline), deadline, OUTCOME_GRACE
            )
        except Busy as exc:
            outcome = self._unknown(target, mode, str(exc))
        with self._lock:
            previous = self._latest.get(key)
            if previous is None or outcome.at >= previous.at:
                self._latest[key] = outcome
        if previous is not outcome and (previous.state if previous else None) != outcome.state:
            self._log_change(outcome, previous)
        return outcome

    def run_check(self, target: TargetConfig, mode: str, deadline: Optional[float] = None) -> Outcome:
        """One check, as the plugin runs it, without its process-wide parts."""
        started = time.monotonic()
        limits = Limits(
            timeout=self.config.timeout,
            deadline=deadline if deadline is not None else started + self.config.timeout,
            connect_timeout=self.config.connect_timeout,
        )
        where = Target(target.address_for(mode), limits)
        options = target.options(mode)
        if mode == "status":
            options = options._replace(rate_store=self._rates[target.name])
        check = load(mode).check(options, where)
        try:
            check()
            text = Output("nagios").result(check, mode=mode, target=str(where))
            state = str(check.state).upper()
        except Exception as exc:  # a bug of ours must not take the server down
            return self._unknown(target, mode, f"internal error: {type(exc).__name__}: {exc}")

        def document() -> str:
            try:
                return Output("json").result(check, mode=mode, target=str(where))
            except Exception as exc:  # as above
                return Output("json").early(
                    "UNKNOWN", f"internal error: {type(exc).__name__}: {exc}", mode=mode
                )

        ended = time.monotonic()
        return Outcome(target.name, mode, state, text, Lazy(document), ended, ended - started)

    def _unknown(self, target: TargetConfig, mode: str, summary: str) -> Outcome:
        return Outcome(
            target.name,
            mode,
            "UNKNOWN",
            Output("nagios").early("UNKNOWN", summary),
            Lazy(lambda: Output("json").early("UNKNOWN", summary, mode=mode)),
            time.monotonic(),
            0.0,
        )

    def _log_change(self, outcome: Outcome, previous: Optional[Outcome]) -> None:
        was = previous.state if previous is not None else "none"
        line = outcome.text.splitlines()[0].split(" | ")[0]
        priority = "<4>" if outcome.state in ("CRITICAL", "UNKNOWN") else "<6>"
        # One line per change; <N> is the priority a journal reads from stderr.
        self.log.write(
            f"{priority}target {outcome.target} {outcome.mode}: {was} -> {outcome.state}: {line}\n"
        )
        self.log.flush()
