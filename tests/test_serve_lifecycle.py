"""A real PHP-FPM behind a running check_fastcgi serve goes through its
life: a graceful reload (SIGUSR2 to the master), a restart that makes its
socket anew, and a master killed with SIGKILL (its workers with it) and
started again. Each time phpfpm_up follows within one scrape, no scrape
outlives its deadline, and it is the same serve process throughout."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.fpm import FpmPool, wait_until
from tests.sidecar import Sidecar

#: What each scrape says it may take (X-Prometheus-Scrape-Timeout-Seconds).
SCRAPE_TIMEOUT = 3.0
#: What a scrape may take beyond that on a slow, loaded 2-core machine.
MARGIN = 2.0
UP = {"tcp": '{pool="www",target="tcp"}', "unix": '{pool="www-unix",target="unix"}'}


@pytest.fixture
def fpm(tmp_path: Path) -> Iterator[FpmPool]:
    with FpmPool(tmp_path / "fpm", max_children=2, pool_name="www") as started:
        yield started


@pytest.fixture
def sidecar(fpm: FpmPool) -> Iterator[Sidecar]:
    targets = ["--target", f"tcp=127.0.0.1:{fpm.port}", "--target", f"unix={fpm.socket_path}"]
    with Sidecar(*targets, "-t", "2") as running:
        yield running
    assert running.stop() == 0
    assert "Traceback" not in running.stderr, running.stderr[-2000:]


def scrape(sidecar: Sidecar) -> Dict[str, float]:
    """phpfpm_up of each target in one scrape, which must end in time."""
    started = time.monotonic()
    status, body, _ = sidecar.get(
        "/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": f"{SCRAPE_TIMEOUT:g}"}, timeout=30
    )
    elapsed = time.monotonic() - started
    assert status == 200 and elapsed < SCRAPE_TIMEOUT + MARGIN, (status, elapsed)
    found = {}
    for line in body.splitlines():
        if line.startswith("phpfpm_up{"):
            labels, value = line[len("phpfpm_up") :].rsplit(" ", 1)
            found[labels] = float(value)
    assert set(found) == set(UP.values()), found  # the same series, up or down
    return found


def all_up(sidecar: Sidecar) -> bool:
    return all(value == 1 for value in scrape(sidecar).values())


def ready_lines(fpm: FpmPool) -> int:
    return fpm.error_log.read_text().count("ready to handle connections")


def workers(pid: int) -> List[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def kill_fpm(fpm: FpmPool) -> List[int]:
    """SIGKILL to the master and its workers; returns once none runs."""
    assert fpm.process is not None
    master = fpm.process.pid
    children = workers(master)
    assert len(children) >= 6, children  # three pools of two
    for victim in [master, *children]:
        os.kill(victim, signal.SIGKILL)
    fpm.process.wait(30)
    wait_until(lambda: not any(alive(child) for child in children), 30, "php-fpm workers gone")
    fpm.process = None
    return children


def same_process(sidecar: Sidecar, pid: int) -> None:
    assert sidecar.process is not None and sidecar.process.pid == pid and sidecar.process.poll() is None
    assert sidecar.get("/healthz")[0] == 200


def test_a_graceful_reload(fpm: FpmPool, sidecar: Sidecar) -> None:
    """SIGUSR2: the master execs itself anew and keeps its sockets; a scrape
    during the reload ends in time, and the first scrape after it has the
    pools up again."""
    assert sidecar.process is not None
    pid = sidecar.process.pid
    assert all_up(sidecar)
    assert fpm.process is not None
    seen, master = ready_lines(fpm), fpm.process.pid
    os.kill(master, signal.SIGUSR2)
    scrape(sidecar)  # up or not, in time
    wait_until(lambda: ready_lines(fpm) > seen, 30, "php-fpm reloaded")
    assert scrape(sidecar) == {UP["tcp"]: 1, UP["unix"]: 1}
    assert fpm.process.pid == master and fpm.process.poll() is None  # reloaded, not restarted
    same_process(sidecar, pid)


def test_a_restart_that_makes_the_socket_anew(fpm: FpmPool, sidecar: Sidecar) -> None:
    assert sidecar.process is not None
    pid = sidecar.process.pid
    assert all_up(sidecar)
    fpm.stop()  # the socket (and its directory) is gone
    assert not fpm.socket_path.exists()
    assert scrape(sidecar) == {UP["tcp"]: 0, UP["unix"]: 0}
    fpm.start()
    assert fpm.socket_path.is_socket()  # a new one at the same path
    assert scrape(sidecar) == {UP["tcp"]: 1, UP["unix"]: 1}
    same_process(sidecar, pid)


def test_a_killed_master_started_again(fpm: FpmPool, sidecar: Sidecar) -> None:
    """SIGKILL to the master and its workers, as a crash under systemd's
    KillMode=control-group leaves it: a stale socket file stays behind
    (connect: refused) until FPM starts again and replaces it. (A master
    killed alone leaves its workers serving the page on the old sockets:
    then up stays 1, and rightly.)"""
    assert sidecar.process is not None
    pid = sidecar.process.pid
    assert all_up(sidecar)
    kill_fpm(fpm)
    assert fpm.socket_path.is_socket()  # stale: nobody listens
    assert scrape(sidecar) == {UP["tcp"]: 0, UP["unix"]: 0}
    fpm.start()
    assert scrape(sidecar) == {UP["tcp"]: 1, UP["unix"]: 1}
    same_process(sidecar, pid)


def test_scrapes_while_fpm_goes_through_it_all(fpm: FpmPool, sidecar: Sidecar) -> None:
    """Scrapes back to back in another thread while FPM reloads, restarts
    and is killed: every one ends in time and has both series."""
    stop = threading.Event()
    outcomes: List[Tuple[float, Dict[str, float]]] = []
    errors: List[BaseException] = []

    def scraping() -> None:
        while not stop.is_set():
            try:
                outcomes.append((time.monotonic(), scrape(sidecar)))
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    assert all_up(sidecar)  # each pool's name known from a page
    thread = threading.Thread(target=scraping)
    thread.start()
    try:
        assert fpm.process is not None
        seen = ready_lines(fpm)
        os.kill(fpm.process.pid, signal.SIGUSR2)
        wait_until(lambda: ready_lines(fpm) > seen, 30, "php-fpm reloaded")
        fpm.restart()
        kill_fpm(fpm)
        fpm.start()
        back = time.monotonic()
        wait_until(
            lambda: errors or any(at > back and sum(up.values()) == 2 for at, up in outcomes), 30, "up again"
        )
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert any(sum(up.values()) < 2 for _, up in outcomes), "no scrape saw FPM down"
    assert len(outcomes) >= 3
