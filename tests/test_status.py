"""status against a real php-fpm, with its own pools so other tests' load
does not move its figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest

from check_fastcgi.fpm.rates import state_file_name
from tests.conftest import assert_plugin_output, run_check
from tests.fpm import FpmPool, SlowRequest

POOL_LABELS = {
    "accepted_conn": r"\d+c;;;0",
    "listen_queue": r"\d+;;;0",
    "max_listen_queue": r"\d+;;;0",
    "listen_queue_len": r"\d+;;;0",
    "idle_processes": r"\d+;;;0",
    "active_processes": r"\d+;;;0",
    "total_processes": r"3;;;0",
    "max_active_processes": r"\d+;;;0",
    "max_children_reached": r"0c;;;0",
    "slow_requests": r"0c;;;0",
    "start_since": r"\d+s;;;0",
    "active_percent": r"[\d.]+%;;;0;100",
    "time": r"[\d.]+s;;;0",
}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("status"), max_children=3, pool_name="stat") as started:
        yield started


def age_state(path: str, seconds: float) -> None:
    """Make the stored sample older, as the next scheduled run would find it
    (rates are not computed between samples under a second apart)."""
    state = json.loads(Path(path).read_text())
    state["sample"]["time"] -= seconds
    Path(path).write_text(json.dumps(state))


def status(pool: FpmPool, *args: str, via: str = "tcp") -> list:
    return ["status", *pool.targets()[via], *args]


@pytest.mark.parametrize("via", ["tcp", "ipv6", "unix"])
def test_status_ok_with_every_label(pool: FpmPool, via: str, tmp_path: Path) -> None:
    outcome = run_check(*status(pool, "--state-file", str(tmp_path / "s.json"), via=via))
    assert_plugin_output(outcome)
    assert outcome.code == 0
    assert re.match(
        r"FASTCGI OK - pool stat\S*: 1 active, 2 idle, 3 total, listen queue 0 \| ", outcome.first_line
    )
    assert set(outcome.perfdata) == set(POOL_LABELS)  # first run: no rates yet
    for label, pattern in POOL_LABELS.items():
        assert re.fullmatch(pattern, outcome.perfdata[label]), (label, outcome.perfdata[label])


def test_threshold_fires_while_a_slow_request_holds_a_worker(pool: FpmPool) -> None:
    calm = run_check(*status(pool, "-w", "active_processes=1", "-c", "active_percent=50"))
    assert calm.code == 0, calm  # only the status request itself is active
    with SlowRequest(pool, ms=3000):
        busy = run_check(*status(pool, "-w", "active_processes=1", "-c", "active_percent=50"))
    assert busy.code == 2, busy
    # Critical is reported first; the numbers that explain it follow.
    assert busy.summary.startswith(
        "FASTCGI CRITICAL - pool stat: active_percent is 66.7% (outside range 0:50); 2 active, 1 idle, 3 total"
    )
    assert busy.perfdata["active_processes"] == "2;1;;0"
    assert busy.perfdata["active_percent"] == "66.7%;;50;0;100"


def test_max_children_scales_active_percent(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "--max-children", "10"))
    assert outcome.perfdata["active_percent"] == "10.0%;;;0;100"
    assert outcome.perfdata["active_processes"] == "1;;;0;10"


def test_full_names_the_longest_running_request(pool: FpmPool) -> None:
    with SlowRequest(pool, ms=3000) as slow:
        outcome = run_check(*status(pool, "--full", "-w", "longest_request=0.000001", "-v"))
    assert_plugin_output(outcome)
    assert outcome.code == 1, outcome
    summary = outcome.first_line
    assert summary.startswith("FASTCGI WARNING - pool stat: longest_request is ")
    match = re.search(r"longest request [\d.]+ (ms|s) \(pid (\d+) GET /slow\.php\?(\S+)\)", summary)
    assert match, summary
    assert match.group(3).startswith("ms=3000&marker=")  # cut to keep the line short
    assert re.fullmatch(r"[\d.]+s;1e-06;;0", outcome.perfdata["longest_request"])
    assert f"process: pid {match.group(2)} Running" in outcome.stdout
    assert f"GET /slow.php?{slow.query}" in outcome.stdout  # -v shows it whole


def test_full_without_load_reports_zero_and_skips_itself(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "--full"))
    assert outcome.perfdata["longest_request"] == "0.0s;;;0"
    assert "longest request" not in outcome.first_line


def test_pool_mismatch_is_critical(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "--pool", "api", via="unix"))
    assert outcome.code == 2
    assert outcome.summary == (
        f"FASTCGI CRITICAL - {pool.socket_path} serves pool 'stat-unix', expected 'api' (socket wired to the wrong pool?)"
    )
    assert run_check(*status(pool, "--pool", "stat-unix", via="unix")).code == 0


def test_status_page_not_enabled_is_unknown_with_the_fix(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "--path", "/fpm-status"))
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert outcome.first_line == (
        f"FASTCGI UNKNOWN - no status page at 127.0.0.1:{pool.port} /fpm-status (HTTP 404): "
        "is pm.status_path = /fpm-status set in the pool? else give its path with --path"
    )


def test_not_a_status_page_is_unknown(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "--path", "/ping"))
    assert outcome.code == 3
    assert (
        outcome.first_line
        == f"FASTCGI UNKNOWN - 127.0.0.1:{pool.port} /ping is not a PHP-FPM status page (not JSON): 'pong'"
    )


def test_rates_first_run_second_run_and_after_restart(pool: FpmPool, tmp_path: Path) -> None:
    state = str(tmp_path / "rates.json")
    first = run_check(*status(pool, "--state-file", state, "-v"))
    assert "accepted_conn_rate" not in first.perfdata
    assert "note: no rates yet: first run" in first.stdout
    age_state(state, 60)
    second = run_check(*status(pool, "--state-file", state, "-c", "accepted_conn_rate=~:100000"))
    assert second.code == 0
    for counter in ("accepted_conn", "max_children_reached", "slow_requests"):
        assert re.fullmatch(r"[\d.]+;;;0", second.perfdata[f"{counter}_rate"].replace(";~:100000;", ";;"))
    assert float(second.perfdata["accepted_conn_rate"].split(";")[0]) > 0
    assert "req/s" in second.first_line
    saved = json.loads(Path(state).read_text())
    assert saved["sample"]["counters"]["accepted_conn"] >= 2
    pool.restart()
    age_state(state, 60)
    third = run_check(*status(pool, "--state-file", state, "-c", "accepted_conn_rate=0", "-v"))
    assert third.code == 0  # a threshold on a rate never fires without a rate
    assert "accepted_conn_rate" not in third.perfdata
    assert "note: no rates: the pool restarted since the last run" in third.stdout
    age_state(state, 60)
    fourth = run_check(*status(pool, "--state-file", state))
    assert "accepted_conn_rate" in fourth.perfdata


def test_default_state_file_is_per_user_and_keyed(pool: FpmPool, state_home: Path) -> None:
    run_check(*status(pool))
    run_check(*status(pool, via="unix"))
    names = sorted(path.name for path in (state_home / "check_fastcgi").iterdir())
    assert state_file_name(f"127.0.0.1:{pool.port}", "/status", "stat") in names
    assert state_file_name(str(pool.socket_path), "/status", "stat-unix") in names
    assert oct((state_home / "check_fastcgi").stat().st_mode & 0o777) == "0o700"


def test_unwritable_state_file_costs_the_rates_not_the_check(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "--state-file", "/proc/no/such/dir/state.json", "-v"))
    assert outcome.code == 0
    assert "accepted_conn_rate" not in outcome.perfdata
    assert "note: no rates: state file /proc/no/such/dir/state.json: " in outcome.stdout


def test_listen_queue_threshold_over_unix_socket_is_pointed_out(pool: FpmPool) -> None:
    outcome = run_check(*status(pool, "-w", "listen_queue=5", via="unix"))
    assert outcome.code == 0
    assert outcome.summary.endswith("(listen queue figures read 0 over a Unix socket)")
    tcp = run_check(*status(pool, "-w", "listen_queue=5"))
    assert "Unix socket" not in tcp.first_line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-w", "bogus=1"], "unknown metric 'bogus'; valid: active_processes, idle_processes"),
        (["-c", "active_processes"], "is not METRIC=RANGE"),
        (["-c", "active_processes=20:10"], "'20:10' is not a Nagios range"),
        (["-c", "longest_request=5"], "a threshold on longest_request needs --full"),
        (["--max-children", "0"], "--max-children must be a whole number from 1 to 2147483647, not '0'"),
    ],
)
def test_threshold_usage_errors(args: list, message: str) -> None:
    outcome = run_check("status", *args)
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert message in outcome.first_line


def test_range_syntax_variants(pool: FpmPool) -> None:
    # total_processes is 3 in this pool.
    assert run_check(*status(pool, "-c", "total_processes=3")).code == 0
    assert run_check(*status(pool, "-c", "total_processes=4:")).code == 2
    assert run_check(*status(pool, "-c", "total_processes=~:2")).code == 2
    assert run_check(*status(pool, "-c", "total_processes=@2:3")).code == 2
    assert run_check(*status(pool, "-c", "total_processes=@4:5")).code == 0


def test_max_children_reached_rate_pages_once_the_pool_ran_out(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The cookbook recipe, against an ondemand pool of two workers (with one,
    FPM counts max_children_reached even for back-to-back requests)."""
    settings = {"pm": "ondemand", "pm.max_children": "2", "pm.process_idle_timeout": "30s"}
    with FpmPool(tmp_path_factory.mktemp("ondemand"), pool_settings=settings) as small:
        args = [
            "status",
            *small.targets()["tcp"],
            "--state-file",
            str(tmp_path / "s"),
            "-c",
            "max_children_reached_rate=0",
        ]
        assert run_check(*args).code == 0  # baseline sample
        age_state(str(tmp_path / "s"), 60)
        calm = run_check(*args)
        assert calm.code == 0 and calm.perfdata["max_children_reached_rate"].startswith("0.0;")
        with SlowRequest(small, ms=1500), SlowRequest(small, ms=1500):
            # A third request while both workers are busy: FPM wants to
            # fork another and counts max_children_reached instead.
            waiting = run_check("ping", *small.targets()["tcp"], "-t", "5")
        assert waiting.code == 0
        paged = run_check(*args)
    assert paged.code == 2, paged
    assert paged.summary.startswith("FASTCGI CRITICAL - pool www: max_children_reached_rate is ")
    assert "(outside range 0:0)" in paged.summary


def test_concurrent_runs_share_a_state_file_safely(pool: FpmPool, tmp_path: Path) -> None:
    """Six runs of the same check at once, three rounds: every run is OK, the
    state file stays valid and holds one of the runs' figures, and no rate
    comes from samples a few milliseconds apart. On a loaded machine the runs
    may spread over more than a second, and then a rate is right: it can be
    no larger than every request of the test in one second."""
    import subprocess  # noqa: PLC0415

    from tests.conftest import CHECK  # noqa: PLC0415

    state = tmp_path / "shared.json"
    command = [CHECK, *status(pool, "--state-file", str(state), "-v")]
    accepted = set()
    found_rates = []
    for _ in range(3):
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(6)]
        outputs = [run.communicate(timeout=60)[0] for run in runs]
        assert all(run.returncode == 0 for run in runs), outputs
        for output in outputs:
            perf = dict(item.split("=", 1) for item in output.rsplit("| ", 1)[1].split())
            accepted.add(int(perf["accepted_conn"].split("c")[0]))
            if "accepted_conn_rate" in perf:
                found_rates.append(float(perf["accepted_conn_rate"].split(";")[0]))
            else:
                assert re.search(r"note: no rates(: the stored sample is| yet: first run)", output), output
        saved = json.loads(state.read_text())
        assert saved["sample"]["counters"]["accepted_conn"] in accepted
    assert all(0 <= rate <= max(accepted) - min(accepted) for rate in found_rates), (found_rates, accepted)


def test_a_held_state_lock_costs_the_rates_not_the_check(pool: FpmPool, tmp_path: Path) -> None:
    """flock -x on the state: OK with a note before -t, never a timeout blamed on the server."""
    import fcntl  # noqa: PLC0415

    state = tmp_path / "s.json"
    run_check(*status(pool, "--state-file", str(state)))
    with open(f"{state}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        outcome = run_check(*status(pool, "--state-file", str(state), "-t", "2", "-v"))
    assert outcome.code == 0, outcome
    assert f"note: no rates: state file {state} is locked by another process" in outcome.stdout
    assert outcome.elapsed < 2.5


@pytest.mark.parametrize(
    "sample",
    [
        {"start_time": 0, "time": 1.0, "counters": {"accepted_conn": 1e308}},
        {"start_time": 0, "time": 1e300, "counters": {"accepted_conn": 0}},
        {"start_time": 0, "time": "NaN", "counters": {"accepted_conn": 0}},
    ],
    ids=["huge-counter", "future", "nan"],
)
def test_a_forged_state_file_gives_no_false_alert_and_valid_json(
    pool: FpmPool, tmp_path: Path, sample: dict
) -> None:
    state = tmp_path / "s.json"
    state.write_text(json.dumps({"sample": sample}).replace('"NaN"', "NaN"))
    args = status(pool, "--state-file", str(state), "-c", "accepted_conn_rate=~:1000", "--format", "json")
    document = json.loads(run_check(*args).stdout, parse_constant=pytest.fail)  # NaN is no JSON
    assert document["state"] == "OK", document
    assert "accepted_conn_rate" not in document["metrics"]
    assert json.loads(state.read_text())["sample"]["time"] < 1e10  # replaced by a real sample
