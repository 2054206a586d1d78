"""check_fastcgi serve's /metrics with many targets: one deadline for the
whole scrape (Prometheus' X-Prometheus-Scrape-Timeout-Seconds less a
margin), bounded parallelism, series that keep their labels when a pool is
down, and per-process series that recycled workers do not multiply. Real
php-fpm pools and real misbehaving servers behind a real serve process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from check_fastcgi.serve.exporter import scrape_deadline
from tests import servers
from tests.fpm import FpmPool, wait_until
from tests.sidecar import Sidecar

#: Generous: a slow, loaded 2-core machine.
MARGIN = 2.0


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("fanout"), max_children=2, pool_name="www") as started:
        yield started


def samples(body: str, name: str) -> Dict[str, float]:
    """The samples of one metric: label text -> value."""
    found = {}
    for line in body.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def scrape(sidecar: Sidecar, timeout: float | None = None) -> Tuple[float, str]:
    headers = {} if timeout is None else {"X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}"}
    started = time.monotonic()
    status, body, _ = sidecar.get("/metrics", headers, timeout=60)
    elapsed = time.monotonic() - started
    assert status == 200, body
    return elapsed, body


def test_the_deadline_is_the_header_less_a_margin() -> None:
    assert scrape_deadline("10", 10.0, 100.0) == pytest.approx(109.5)
    assert scrape_deadline("1", 10.0, 100.0) == pytest.approx(100.9)  # a tenth when that is less
    assert scrape_deadline(" 2.5 ", 10.0, 0.0) == pytest.approx(2.25)
    for header in (None, "", "soon", "nan", "-1", "0", "1e400", "inf", "7200"):
        assert scrape_deadline(header, 4.0, 0.0) == pytest.approx(3.6), header


def test_hung_targets_cost_a_scrape_no_more_than_its_deadline(pool: FpmPool) -> None:
    """Six targets that accept and never answer, listed before two healthy
    ones, two threads, -t far longer than the scrape: the scrape ends by
    the header's deadline, the hung ones read 0 (a timeout each), and the
    healthy ones are all there."""
    with servers.ScriptedServer(servers.silent) as silent:
        hung = [arg for n in range(6) for arg in ("--target", f"hung{n}=127.0.0.1:{silent.port}")]
        healthy = ["--target", f"tcp=127.0.0.1:{pool.port}", "--target", f"unix={pool.socket_path}"]
        args = [*hung, *healthy, "-t", "60", "--scrape-concurrency", "2", "--scrape-timeout", "3"]
        with Sidecar(*args) as sidecar:
            elapsed, body = scrape(sidecar, timeout=4)
            assert elapsed < 4 + MARGIN, elapsed
            up = samples(body, "phpfpm_up")
            assert up['{pool="www",target="tcp"}'] == 1 and up['{pool="www-unix",target="unix"}'] == 1, up
            for n in range(6):  # never read: the target's name stands for the pool
                assert up[f'{{pool="hung{n}",target="hung{n}"}}'] == 0, up
            timeouts = samples(body, "phpfpm_scrape_timeouts_total")
            assert timeouts['{pool="hung0",target="hung0"}'] == 1, timeouts
            assert timeouts['{pool="www",target="tcp"}'] == 0, timeouts
            assert samples(body, "phpfpm_scrape_failures_total")['{pool="hung5",target="hung5"}'] == 1
            assert len(samples(body, "phpfpm_active_processes")) == 2
            # Without the header: --scrape-timeout (3 s) less its margin.
            elapsed, body = scrape(sidecar)
            assert elapsed < 3 + MARGIN, elapsed
            assert sum(samples(body, "phpfpm_up").values()) == 2
            assert samples(body, "phpfpm_scrape_timeouts_total")['{pool="hung3",target="hung3"}'] == 2
            assert sidecar.get("/healthz")[0] == 200
        assert sidecar.stop() == 0
    assert "Traceback" not in sidecar.stderr


PAGE = (
    '{"pool":"fake","process manager":"static","start time":1700000000,"start since":60,'
    '"accepted conn":5,"listen queue":0,"max listen queue":0,"listen queue len":0,'
    '"idle processes":1,"active processes":1,"total processes":2,'
    '"max active processes":1,"max children reached":0,"slow requests":0}'
)


class Gate:
    """A FastCGI server that answers a status page once ``width``
    connections wait for it at the same time (a barrier; or once
    ``patience`` has passed), and records the most it saw at once: a
    worker pool of exactly that width fills every round, and never more."""

    def __init__(self, width: int, patience: float = 5.0) -> None:
        self.barrier = threading.Barrier(width)
        self.patience = patience
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        self.served = 0

    def __call__(self, conn: socket.socket, stopping: threading.Event) -> None:
        servers.read_request(conn)
        with self.lock:
            self.open += 1
            self.most = max(self.most, self.open)
        with contextlib.suppress(threading.BrokenBarrierError):  # fewer came: answer when patience is out
            self.barrier.wait(self.patience)
        with self.lock:
            self.served += 1
            self.open -= 1
        conn.sendall(servers.fastcgi_reply(b"Content-Type: application/json\r\n\r\n" + PAGE.encode()))


def test_a_scrape_holds_no_more_exchanges_than_its_concurrency() -> None:
    gate = Gate(width=3)
    with servers.ScriptedServer(gate) as fake:
        targets = [arg for n in range(12) for arg in ("--target", f"t{n}=127.0.0.1:{fake.port}")]
        with Sidecar(*targets, "--scrape-concurrency", "3", "-t", "20") as sidecar:
            elapsed, body = scrape(sidecar, timeout=20)
    assert samples(body, "phpfpm_up") == {f'{{pool="fake",target="t{n}"}}': 1.0 for n in range(12)}
    assert gate.served == 12 and gate.most == 3, (gate.served, gate.most)
    assert elapsed < 20, elapsed  # in parallel: one at a time, each would wait its patience out


def test_series_keep_their_labels_when_fpm_is_down(tmp_path: Path) -> None:
    """phpfpm_up{pool="www",target=...} reads 0 when FPM is down, instead of
    vanishing for a series under another name: the pool from the
    configuration, else from the last good page."""
    with FpmPool(tmp_path / "fpm", max_children=2, pool_name="www") as fpm:
        config = tmp_path / "serve.toml"
        config.write_text(
            f'[targets.conf]\naddress = "127.0.0.1:{fpm.port}"\npool = "www"\n'
            f'[targets.learned]\naddress = "{fpm.socket_path}"\n'
            f'[targets.wired]\naddress = "127.0.0.1:{fpm.port}"\npool = "api"\n'
        )
        with Sidecar("--config", str(config), "-t", "2") as sidecar:
            _, body = scrape(sidecar, timeout=5)
            up = samples(body, "phpfpm_up")
            assert up == {
                '{pool="www",target="conf"}': 1,
                '{pool="www-unix",target="learned"}': 1,
                '{pool="api",target="wired"}': 0,  # serves pool www: no figures under the name api
            }, up
            assert '{pool="api",target="wired"}' not in samples(body, "phpfpm_total_processes")
            fpm.stop()
            elapsed, body = scrape(sidecar, timeout=5)
            assert elapsed < 5 + MARGIN
            assert samples(body, "phpfpm_up") == {
                '{pool="www",target="conf"}': 0,
                '{pool="www-unix",target="learned"}': 0,
                '{pool="api",target="wired"}': 0,
            }
            failures = samples(body, "phpfpm_scrape_failures_total")
            assert (
                failures['{pool="www",target="conf"}'] == 1 and failures['{pool="api",target="wired"}'] == 2
            )
            assert samples(body, "phpfpm_scrape_timeouts_total")['{pool="www",target="conf"}'] == 0  # refused
            fpm.start()
            _, body = scrape(sidecar, timeout=5)
            assert samples(body, "phpfpm_up")['{pool="www",target="conf"}'] == 1
            assert samples(body, "phpfpm_up")['{pool="www-unix",target="learned"}'] == 1


def test_the_pool_given_on_the_command_line_labels_a_target_never_reached() -> None:
    """The issue's own case: FPM down from the start, yet the series an
    alert watches is there, reading 0."""
    with (
        servers.ScriptedServer(servers.hangs_up) as closed,  # FPM's port, FPM stopped or crashing
        Sidecar("-H", "127.0.0.1", "-p", str(closed.port), "--pool", "www", "-t", "2") as sidecar,
    ):
        _, body = scrape(sidecar, timeout=5)
    assert samples(body, "phpfpm_up") == {'{pool="www",target="fpm"}': 0.0}
    assert samples(body, "phpfpm_scrape_failures_total") == {'{pool="www",target="fpm"}': 1.0}


def test_recycled_workers_do_not_grow_the_series(tmp_path: Path) -> None:
    """pm.max_requests = 1: every status request ends its worker, so each
    scrape meets new pids. The per-process series are labelled by slot:
    their number stays that of the pool's workers."""
    series: Set[str] = set()
    pids: Set[float] = set()
    with (
        FpmPool(tmp_path / "fpm", max_children=2, pool_settings={"pm.max_requests": "1"}) as fpm,
        Sidecar("--target", f"www=127.0.0.1:{fpm.port}", "--full") as sidecar,
    ):

        def scraped_new_workers() -> bool:
            _, body = scrape(sidecar, timeout=5)
            series.update(samples(body, "phpfpm_process_requests_total"))
            pids.update(samples(body, "phpfpm_process_pid").values())
            return len(pids) >= 8

        wait_until(scraped_new_workers, 60, "eight workers seen", interval=0.05)
    assert series <= {f'{{pool="www",slot="{slot}",target="www"}}' for slot in ("0", "1")}, series
    assert len(series) >= 1 and not any("pid" in labels for labels in series)


def test_concurrent_scrapes_share_one_exchange_within_max_inflight() -> None:
    """Eight scrapes at once of one target whose page takes 4 s (it waits
    for a second connection that max_inflight 1 never lets come): they
    share the exchange in flight instead of queueing eight."""
    gate = Gate(width=2, patience=4.0)
    with (
        servers.ScriptedServer(gate) as fake,
        Sidecar("--target", f"slow=127.0.0.1:{fake.port}", "--max-inflight", "1", "-t", "20") as sidecar,
    ):
        bodies: List[str] = []
        lock = threading.Lock()

        def one() -> None:
            body = scrape(sidecar, timeout=15)[1]
            with lock:
                bodies.append(body)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(bodies) == 8
    assert all(samples(body, "phpfpm_up") == {'{pool="fake",target="slow"}': 1.0} for body in bodies)
    assert gate.most == 1 and gate.served <= 2, (gate.most, gate.served)  # one exchange, a straggler at most
