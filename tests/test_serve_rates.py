"""serve keeps its rates in its own memory. Its /status probes used to share
the state file of the command-line check of the same pool: after 30
probes, the next Nagios run compared itself with serve's last sample and
reported a fraction of the real request rate. Now serve never reads or
writes the one-shot checks' state files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from check_fastcgi.fpm.rates import MemoryRates
from tests.conftest import STATE_HOME, Outcome, assert_plugin_output, run_check
from tests.fpm import FpmPool, wait_until
from tests.sidecar import Sidecar

COUNTERS = {"accepted_conn": 100, "max_children_reached": 0, "slow_requests": 2}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("rates"), max_children=2, pool_name="www") as started:
        yield started


def figure(outcome: Outcome, label: str) -> float:
    return float(outcome.perfdata[label].split(";")[0].rstrip("c"))


def state_files() -> Dict[str, Tuple[bytes, int]]:
    """Every file under the tests' XDG_STATE_HOME: content and mtime."""
    root = Path(STATE_HOME["path"])
    return {
        str(path): (path.read_bytes(), path.stat().st_mtime_ns) for path in root.rglob("*") if path.is_file()
    }


def test_serve_probes_leave_the_one_shot_checks_state_file_alone(pool: FpmPool) -> None:
    target = ["-H", "127.0.0.1", "-p", str(pool.port)]  # the same target, path and pool: the same state file
    started_first = time.monotonic()
    first = run_check("status", *target)
    ended_first = time.monotonic()
    assert_plugin_output(first)
    before = state_files()
    assert any(f":{pool.port}-" in path for path in before), before  # the one-shot check's own
    with Sidecar(*target) as sidecar:  # the same user, the same XDG_STATE_HOME
        for _ in range(30):
            status, text, _ = sidecar.get("/status")
            assert status == 200 and text.startswith("FASTCGI OK - pool www"), text

        # serve's own rates, from its own previous probe (1 s apart at least):
        def probe_has_a_rate() -> bool:
            return " accepted_conn_rate=" in sidecar.get("/status")[1]

        wait_until(probe_has_a_rate, 30, "a rate in serve's /status", interval=0.1)
        assert state_files() == before  # not read-modified-written, not added to
    started_second = time.monotonic()
    second = run_check("status", *target)
    ended_second = time.monotonic()
    assert_plugin_output(second)
    assert state_files() != before  # the one-shot check keeps its file
    # The rate since the first one-shot run, as if serve had not been there:
    requests = figure(second, "accepted_conn") - figure(first, "accepted_conn")
    assert requests >= 32, requests  # serve's 31 or more probes and the first run's own
    rate = figure(second, "accepted_conn_rate")
    slowest, fastest = requests / (ended_second - started_first), requests / (started_second - ended_first)
    assert slowest - 0.01 <= rate <= fastest + 0.01, (rate, slowest, fastest)


def test_memory_rates_follow_the_state_files_rules() -> None:
    store = MemoryRates()
    base = time.time() - 100  # samples from the past, as real ones are
    key = "/status\0www"
    assert store.rates(key, 1700, COUNTERS, base) == ({}, "no rates yet: the first sample of this process")
    later = {**COUNTERS, "accepted_conn": 150}
    assert store.rates(key, 1700, later, base + 0.5)[0] == {}  # too close: the older one stays the reference
    found, why = store.rates(key, 1700, later, base + 10)
    assert why is None and found == {
        "accepted_conn_rate": 5.0,
        "max_children_reached_rate": 0.0,
        "slow_requests_rate": 0.0,
    }
    assert store.rates(key, 1800, later, base + 20) == ({}, "no rates: the pool restarted since the last run")
    assert store.rates(key, 1800, COUNTERS, base + 30)[1] == "no rates: the pool restarted since the last run"
    other = "/status\0api"  # the socket now serves another pool: start again
    assert store.rates(other, 1800, later, base + 40) == (
        {},
        "no rates yet: the first sample of this process",
    )
    assert store.rates(key, 1800, later, base + 50)[1] == "no rates yet: the first sample of this process"
    fewer = {"accepted_conn": 200}  # a page without some counters: no rate from a sample that had them
    assert store.rates(key, 1800, fewer, base + 60)[0] == {}


def test_memory_rates_are_safe_from_threads() -> None:
    store = MemoryRates()
    base = time.time() - 1000
    store.rates("k", 1, {"accepted_conn": 0}, base)
    found = []

    def sample(n: int) -> None:
        rates, _ = store.rates("k", 1, {"accepted_conn": 10 * n}, base + n)
        found.extend(rates.values())

    threads = [threading.Thread(target=sample, args=(n,)) for n in range(1, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert found and all(value == pytest.approx(10.0) for value in found), found  # never a mix of samples
