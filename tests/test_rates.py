"""Counter rates between runs: the rules that keep them from ever lying."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from check_fastcgi.rates import default_state_dir, rates, state_file_name

COUNTERS = {"accepted_conn": 100, "max_children_reached": 1, "slow_requests": 0}


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


def test_corrupt_state_costs_one_run(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text("{not json")
    found, why = rates(state, 1700, COUNTERS, 1000.0)
    assert found == {} and why is not None and why.startswith(f"no rates: state file {state}: ")
    assert rates(state, 1700, COUNTERS, 1001.0) == ({}, "no rates yet: first run")
    assert rates(state, 1700, COUNTERS, 1002.0)[1] is None


def test_unreadable_previous_sample(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text('{"sample": {"counters": {}, "time": "x"}}')
    assert rates(state, 1700, COUNTERS, 1000.0) == ({}, "no rates: previous sample unreadable")


def test_state_file_names_are_safe_and_distinct() -> None:
    assert state_file_name("[::1]:9000", "/status", "www") == "status-::1_:9000-status-www.json"
    assert state_file_name("[::2]:9000", "/status", "www") == "status-::2_:9000-status-www.json"
    assert state_file_name("/run/php/www.sock", "/status", "www") == "status-run_php_www.sock-status-www.json"
    assert state_file_name("h:9000", "/../../etc", "a b") == "status-h:9000-.._.._etc-a_b.json"


def test_default_state_dir_prefers_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "check_fastcgi"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / ".local" / "state" / "check_fastcgi"
    monkeypatch.setenv("HOME", "/")
    assert default_state_dir() == Path(f"/var/tmp/check_fastcgi-{os.getuid()}")


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


def test_a_symlinked_state_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    state = tmp_path / "s.json"
    state.symlink_to(target)
    found, why = rates(state, 1700, COUNTERS, 1000.0)
    assert found == {} and why is not None and why.startswith(f"no rates: state file {state}: ")
    assert target.read_text() == "precious"
