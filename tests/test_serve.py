"""check_fastcgi serve: real HTTP clients against the running sidecar, real
php-fpm pools and real misbehaving servers behind it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

import fcgi_wire
from tests import servers
from tests.fpm import FpmPool, SlowRequest, free_port, wait_until
from tests.sidecar import Sidecar

KUBE_PROBE = {"User-Agent": "kube-probe/1.31", "Accept": "*/*", "Connection": "close"}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("serve"), max_children=2, pool_name="side") as started:
        yield started


def tcp(pool: FpmPool) -> str:
    return f"127.0.0.1:{pool.port}"


def fpm_status(pool: FpmPool) -> dict:
    params = {
        "SCRIPT_NAME": "/status",
        "SCRIPT_FILENAME": "/status",
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "json",
    }
    return json.loads(fcgi_wire.request(fcgi_wire.TcpAddress("127.0.0.1", pool.port), params, timeout=5).body)


def test_probes_with_curl_and_a_kubelet_style_client(pool: FpmPool) -> None:
    with Sidecar(
        "--target", f"side={tcp(pool)}", "-w", "total_processes=1", "-c", "idle_processes=5:"
    ) as sidecar:
        curl = subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{sidecar.port}/ping"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, code = curl.stdout.rsplit("\n", 1)
        assert code == "200" and body.startswith(f"FASTCGI OK - {tcp(pool)} /ping answered 200 OK")
        assert sidecar.get("/fcgi-ping", KUBE_PROBE)[0] == 200  # fastcgi-healthcheck's path
        assert sidecar.get("/side/handshake", KUBE_PROBE)[0] == 200
        status, text, headers = sidecar.get("/status?target=side", KUBE_PROBE)
        assert status == 503 and text.startswith("FASTCGI CRITICAL - pool side: idle_processes is ")
        assert (
            headers["content-type"] == "text/plain; charset=utf-8" and headers["cache-control"] == "no-store"
        )
        document = json.loads(sidecar.get("/status", {"Accept": "application/json"})[1])
        assert document["state"] == "CRITICAL" and document["mode"] == "status"
        assert json.loads(sidecar.get("/ping?format=json")[1])["state"] == "OK"
    with Sidecar("-H", "127.0.0.1", "-p", str(pool.port), "-w", "total_processes=1") as warned:
        status, text, _ = warned.get("/status")
        assert status == 200 and text.startswith("FASTCGI WARNING - pool side: total_processes is 2")


def test_health_never_calls_fastcgi_and_reports_the_last_checks(pool: FpmPool) -> None:
    with (
        servers.ScriptedServer(servers.silent) as silent,
        Sidecar("--target", f"quiet=127.0.0.1:{silent.port}") as sidecar,
    ):
        started = time.monotonic()
        status, text, _ = sidecar.get("/healthz")
        assert status == 200 and text.startswith("ok: check_fastcgi serve, up ")
        assert time.monotonic() - started < 1 and silent.accepted == 0
        sidecar.get("/ping", timeout=30)  # a CRITICAL check (the silent server)
        document = json.loads(sidecar.get("/health?format=json")[1])
        assert document["status"] == "ok"
        assert [(c["target"], c["mode"], c["state"]) for c in document["checks"]] == [
            ("quiet", "ping", "CRITICAL")
        ]


def test_a_busy_pool_answers_503_within_the_deadline(pool: FpmPool) -> None:
    with (
        Sidecar("--target", f"side={tcp(pool)}", "-t", "1") as sidecar,
        SlowRequest(pool, 3000),
        SlowRequest(pool, 3000),
    ):
        started = time.monotonic()
        status, text, _ = sidecar.get("/ping")
        assert time.monotonic() - started < 2
    assert status == 503
    assert "connection accepted, but nothing answered (every worker busy, or not a FastCGI server?)" in text


def test_fpm_stopped_then_started_again(tmp_path: Path) -> None:
    with FpmPool(tmp_path / "fpm", max_children=2) as pool:
        sidecar = Sidecar("--target", f"www={tcp(pool)}").start()
        try:
            assert sidecar.get("/ping")[0] == 200
            pool.stop()
            status, text, _ = sidecar.get("/ping")
            assert status == 503 and f"connect to {tcp(pool)}: connection refused" in text
            pool.start()
            assert sidecar.get("/ping")[0] == 200
        finally:
            assert sidecar.stop() == 0
    changes = [line for line in sidecar.log_lines() if line.startswith(("<4>target", "<6>target"))]
    assert [line.split(": ")[1] for line in changes] == ["none -> OK", "OK -> CRITICAL", "CRITICAL -> OK"], (
        changes
    )
    assert changes[1].startswith("<4>target www ping: OK -> CRITICAL: FASTCGI CRITICAL - connect to ")


def test_a_hostile_target_costs_its_own_probe_only(pool: FpmPool) -> None:
    junk = servers.answers_and_waits(b"\x01\x06\x00\x01\xff\xff\x00\x00" + b"\x1b[31m|" * 100)
    with (
        servers.ScriptedServer(junk) as hostile,
        Sidecar(
            "--target", f"bad=127.0.0.1:{hostile.port}", "--target", f"good={tcp(pool)}", "-t", "1"
        ) as sidecar,
    ):
        status, text, _ = sidecar.get("/bad/ping")
        assert status == 503 and text.startswith("FASTCGI CRITICAL - ") and "\x1b" not in text
        assert sidecar.get("/good/ping")[0] == 200
        assert sidecar.get("/health")[0] == 200


def test_nothing_in_a_request_chooses_an_address(pool: FpmPool) -> None:
    with Sidecar("--target", f"side={tcp(pool)}") as sidecar:
        for path in ["/ping?target=127.0.0.1:22", "/127.0.0.1:22/ping", "/other/status", "/../ping/x"]:
            status, text, _ = sidecar.get(path)
            assert status == 404, (path, status, text)
        assert sidecar.get("/")[0] == 404
        status, _, headers = sidecar.get("/ping", method="POST")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert sidecar.get("/ping", method="DELETE")[0] == 405
        assert sidecar.get("/ping", method="HEAD")[0] == 200


def test_slow_and_malformed_clients_do_not_block_probes(pool: FpmPool) -> None:
    with Sidecar("--target", f"side={tcp(pool)}") as sidecar:
        slow = []
        for _ in range(10):  # slowloris: half a request head each, then silence
            conn = socket.create_connection(("127.0.0.1", sidecar.port))
            conn.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
            slow.append(conn)
        try:
            started = time.monotonic()
            assert sidecar.get("/ping")[0] == 200
            assert time.monotonic() - started < 1
            with socket.create_connection(("127.0.0.1", sidecar.port)) as garbage:
                garbage.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200) + b"\r\n\r\n")
                assert garbage.recv(100).startswith(b"HTTP/1.")  # an error status, not a hang
            with socket.create_connection(("127.0.0.1", sidecar.port)) as huge:
                huge.sendall(b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
                assert huge.recv(100).startswith(b"HTTP/1.")
            assert sidecar.get("/ping")[0] == 200
        finally:
            for conn in slow:
                conn.close()
        assert sidecar.stop() == 0
    assert "Traceback" not in sidecar.stderr


def test_sigterm_lets_the_probe_in_flight_finish(pool: FpmPool) -> None:
    with servers.ScriptedServer(servers.silent) as silent:
        sidecar = Sidecar("--target", f"quiet=127.0.0.1:{silent.port}", "-t", "2").start()
        answers: List[int] = []
        probe = threading.Thread(target=lambda: answers.append(sidecar.get("/ping")[0]))
        probe.start()
        wait_until(lambda: silent.accepted >= 1, 10, "the probe's FastCGI connection")
        stopped = time.monotonic()
        assert sidecar.stop() == 0
        probe.join(10)
    assert answers == [503]  # answered (the deadline passed), not cut off
    assert time.monotonic() - stopped < 4
    assert (
        "Traceback" not in sidecar.stderr and "<6>stopping: finishing the probes in flight" in sidecar.stderr
    )


def test_a_probe_storm_takes_one_worker_and_shares_exchanges(tmp_path: Path) -> None:
    """50 concurrent probes of a health script that takes 0.5 s: single
    flight shares the exchange, and the pool never sees more than the bound."""
    with FpmPool(tmp_path / "fpm", max_children=3) as pool:
        before = fpm_status(pool)
        slow = ["--ping-path", "/slow.php", "--script-filename", pool.script("slow.php"), "-e", "slept"]
        with Sidecar("--target", f"www={tcp(pool)}", "--max-inflight", "1", *slow) as sidecar:
            codes: List[int] = []
            lock = threading.Lock()

            def probe() -> None:
                code = sidecar.get("/ping", KUBE_PROBE)[0]
                with lock:
                    codes.append(code)

            storm = [threading.Thread(target=probe) for _ in range(50)]
            for thread in storm:
                thread.start()
            for thread in storm:
                thread.join(30)
        after = fpm_status(pool)
    assert codes == [200] * 50
    exchanges = after["accepted conn"] - before["accepted conn"] - 1  # our own status request
    assert 1 <= exchanges <= 5, exchanges  # not 50
    assert after["max active processes"] <= 2  # one probe exchange at a time, plus our status request


def test_fastcgi_healthcheck_variables_and_a_toml_file(pool: FpmPool, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "SERVER": f"127.0.0.1:{port}",
        "DESTINATION": "127.0.0.1",
        "DESTINATION_PORT": str(pool.port),
        "PING_PATH": "/ping",
        "PING_RESPONSE": "pong",
    }
    with Sidecar(env=env, port=port) as sidecar:
        assert sidecar.get("/fcgi-ping")[0] == 200
    config = tmp_path / "serve.toml"
    config.write_text(
        f'timeout = 3\n[targets.tcp]\naddress = "{tcp(pool)}"\n'
        f'[targets.unix]\naddress = "{pool.socket_path}"\ncritical = {{ idle_processes = "5:" }}\n'
    )
    with Sidecar("--config", str(config)) as sidecar:
        assert sidecar.get("/tcp/status")[0] == 200
        assert sidecar.get("/unix/status")[0] == 503


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no target: give -H/-p, -s, --target NAME=ADDRESS or --config FILE"),
        (["--target", "x"], "--target 'x': give NAME=ADDRESS"),
        (["--target", "a b=127.0.0.1:9000"], "target name 'a b'"),
        (["-H", "127.0.0.1", "-c", "bogus=1"], "-c: unknown metric 'bogus'"),
        (["--config", "/nonexistent.toml"], "--config /nonexistent.toml: no such file or directory"),
    ],
)
def test_configuration_errors_are_one_line(args: list, message: str) -> None:
    done = subprocess.run([*Sidecar(*args).command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("check_fastcgi serve: ") and message in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_without_prometheus_client_serve_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from check_fastcgi.cli import main; main(['serve', '-H', '127.0.0.1'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (
        2,
        "check_fastcgi serve: needs prometheus_client: pip install 'check_fastcgi[serve]'\n",
    )


def test_sidecar_stops_cleanly_on_sigint(pool: FpmPool) -> None:
    sidecar = Sidecar("--target", f"side={tcp(pool)}").start()
    assert sidecar.process is not None
    sidecar.process.send_signal(signal.SIGINT)
    assert sidecar.stop() == 0


def test_waiting_for_a_turn_counts_against_the_deadline() -> None:
    """One exchange at a time, a server that never answers, two checks at
    once: the second waits for a turn, and both still answer within -t."""
    with (
        servers.ScriptedServer(servers.silent) as silent,
        Sidecar("--target", f"quiet=127.0.0.1:{silent.port}", "-t", "1", "--max-inflight", "1") as sidecar,
    ):
        answers: List[tuple] = []

        def probe(path: str) -> None:
            started = time.monotonic()
            status, text, _ = sidecar.get(path)
            answers.append((path, status, time.monotonic() - started, text))

        both = [threading.Thread(target=probe, args=(path,)) for path in ("/ping", "/status")]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join(10)
    assert sorted(a[1] for a in answers) == [503, 503], answers
    assert all(elapsed < 1.8 for _, _, elapsed, _ in answers), answers


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("timeout = 1e400", "--config timeout 'inf': give seconds from 0.001 to 3600"),
        ("timeout = -5", "--config timeout '-5': give seconds from 0.001 to 3600"),
        ('timeout = "soon"', "--config timeout 'soon': give seconds from 0.001 to 3600"),
        ("max_inflight = 0", "--config max_inflight '0': give a whole number from 1 to 10000"),
        ("max_connections = " + "9" * 27, "--config max_connections '99999999999999999999'"),
        ("max_inflight = true", "--config max_inflight 'True': give a whole number"),
        ("timout = 5", "--config: unknown setting 'timout'"),
        ('[targets.a]\naddress = "127.0.0.1:9"\nwarning = "x"', "target a: warning must be a table, not 'x'"),
        (
            '[targets.a]\naddress = "127.0.0.1:9"\nmax_children = true',
            "target a: max_children must be a whole number from 1 to 2147483647, not 'True'",
        ),
        (
            '[targets.a]\naddress = "127.0.0.1:9"\nfull = "no"',
            "target a: full must be true or false, not 'no'",
        ),
        (
            '[targets.a]\naddress = "127.0.0.1:9"\nmax_children = 10000000000',
            "max_children must be a whole number from 1",
        ),
    ],
)
def test_a_configuration_file_is_held_to_the_command_lines_bounds(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "serve.toml"
    if "[targets" not in toml:
        toml += '\n[targets.a]\naddress = "127.0.0.1:9"'
    config.write_text(toml + "\n")
    done = subprocess.run(
        [*Sidecar("--config", str(config)).command], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("check_fastcgi serve: ") and message in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("args", [["-t", "0"], ["-t", "nan"], ["--max-inflight", "0"], ["--cache-ttl", "-1"]])
def test_command_line_limits_are_bounded(args: list) -> None:
    done = subprocess.run(
        [*Sidecar("-H", "127.0.0.1", *args).command], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "give " in done.stderr and len(done.stderr.splitlines()) == 1, done
