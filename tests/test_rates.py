"""Counter rates between runs: the rules that keep them from ever lying."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from check_fastcgi.fpm import rates as rates_module

COUNTERS = {"accepted_conn": 100, "max_children_reached": 1, "slow_requests": 0}


def rates(state: Path, start_time: int, counters: dict, now: float) -> tuple:
    return rates_module.rates(state, start_time, counters, now, deadline=time.monotonic() + 5)


def test_first_then_rate(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "er" / "s.json"
    assert rates(state, 1700, COUNTERS, 1000.0) == ({}, "no rates yet: first run")
    later = {**COUNTERS, "accepted_conn": 150}
    found, why = rates(state, 1700, later, 1010.0)
    assert why is None
    assert found == {"accepted_conn_rate": 5.0, "max_children_reached_rate": 0.0, "slow_requests_rate": 0.0}
    assert oct(state.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    ("start_time", "counters", "now", "why"),
    [
        (1800, COUNTERS, 1010.0, "no rates: the pool restarted since the last run"),
        (1700, {**COUNTERS, "accepted_conn": 3}, 1010.0, "no rates: the pool restarted since the last run"),
        (
            1700,
            COUNTERS,
            999.0,
            "no rates: the stored sample is newer (a concurrent run, or the clock went back)",
        ),
        (1700, COUNTERS, 1000.0, "no rates: the stored sample is under 1 s old (a concurrent run?)"),
        (
            1700,
            {**COUNTERS, "accepted_conn": 101},
            1000.001,
            "no rates: the stored sample is under 1 s old (a concurrent run?)",
        ),
    ],
)
def test_no_rate_rather_than_a_wrong_one(
    tmp_path: Path, start_time: int, counters: dict, now: float, why: str
) -> None:
    state = tmp_path / "s.json"
    rates(state, 1700, COUNTERS, 1000.0)
    assert rates(state, start_time, counters, now) == ({}, why)


def test_unreadable_previous_sample(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text('{"sample": {"counters": {}, "time": "x"}}')
    assert rates(state, 1700, COUNTERS, 1000.0) == (
        {},
        f"no rates: state file {state} held no valid sample; replaced",
    )


def test_samples_too_close_keep_the_older_reference(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    rates(state, 1700, COUNTERS, 1000.0)
    assert rates(state, 1700, {**COUNTERS, "accepted_conn": 101}, 1000.5)[0] == {}
    found, why = rates(state, 1700, {**COUNTERS, "accepted_conn": 112}, 1002.0)
    assert why is None
    assert found["accepted_conn_rate"] == 6.0  # (112 - 100) / 2 s: against the sample from 1000.0


def test_an_older_sample_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """Two runs overlap: the one whose figures are older finishes last."""
    state = tmp_path / "s.json"
    rates(state, 1700, COUNTERS, 1000.0)
    newer = {**COUNTERS, "accepted_conn": 120}
    assert rates(state, 1700, newer, 1010.0)[1] is None
    older = {**COUNTERS, "accepted_conn": 110}
    assert rates(state, 1700, older, 1005.0) == (
        {},
        "no rates: the stored sample is newer (a concurrent run, or the clock went back)",
    )
    # The newer sample is still the reference.
    found, _ = rates(state, 1700, {**COUNTERS, "accepted_conn": 140}, 1020.0)
    assert found["accepted_conn_rate"] == 2.0


def test_state_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    rates(state, 1700, COUNTERS, 1000.0)
    assert oct(state.stat().st_mode & 0o777) == "0o600"
