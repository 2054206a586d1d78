"""check_fastcgi serve against a hostile HTTP client and a hostile
configuration file: real sockets against a real ``check_fastcgi serve``
process, real FastCGI servers behind it, real files and FIFOs."""

from __future__ import annotations

import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from check_fastcgi.serve.exporter import MAX_PROCESSES
from check_fastcgi.serve.http import REQUEST_TIMEOUT
from tests import servers
from tests.conftest import CHECK
from tests.fpm import FpmPool, wait_until
from tests.sidecar import Sidecar

#: Generous: the tests run on a slow, loaded 2-core machine.
LIMIT = 15.0


def target(fpm: FpmPool) -> List[str]:
    return ["--target", f"www=127.0.0.1:{fpm.port}"]


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=LIMIT)


def read_response(conn: socket.socket) -> Tuple[int, Dict[str, str], bytes]:
    """One whole response (its head and its Content-Length body) from a
    connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def read_to_end(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after the
    answer counts as closed); fails if it keeps the connection open."""
    data = b""
    conn.settimeout(LIMIT)
    while True:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError(f"the server kept the connection open after {data[:200]!r}") from None
        if not chunk:
            return data
        data += chunk


def is_closed(conn: socket.socket) -> bool:
    """True once the server has closed ``conn`` (without waiting)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def keep_alive(port: int) -> socket.socket:
    """A keep-alive connection that completed one request and stays open."""
    conn = connect(port)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n")
    status, headers, _ = read_response(conn)
    assert status == 200 and headers.get("connection") != "close"
    return conn


def half_a_head(port: int) -> socket.socket:
    """A connection that sent part of a request head, and then nothing."""
    conn = connect(port)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n")
    return conn


def half_a_head_after_a_request(port: int) -> socket.socket:
    conn = keep_alive(port)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    return conn


def timed_healthz(sidecar: Sidecar) -> Tuple[int, float]:
    started = time.monotonic()
    status = sidecar.get("/healthz", timeout=LIMIT)[0]
    return status, time.monotonic() - started


# --- 1. connections that only wait cannot deny the others ---------------------------


@pytest.mark.parametrize("hold", [keep_alive, half_a_head, half_a_head_after_a_request])
def test_connections_that_only_wait_cannot_deny_healthz(
    fpm: FpmPool, hold: Callable[[int], socket.socket]
) -> None:
    with Sidecar(*target(fpm), "--max-connections", "8") as sidecar:
        opened = time.monotonic()
        held = [hold(sidecar.port) for _ in range(8)]  # every slot
        try:
            status, elapsed = timed_healthz(sidecar)
            assert status == 200 and elapsed < 3, (status, elapsed)
            # The oldest connection made room; the others are still open
            # (unless this machine is so slow that their head timed out).
            wait_until(lambda: is_closed(held[0]), LIMIT, "the oldest waiting connection closed")
            if time.monotonic() - opened < REQUEST_TIMEOUT - 1:
                assert not any(is_closed(conn) for conn in held[1:])
        finally:
            for conn in held:
                conn.close()


def test_a_connection_running_a_probe_is_never_evicted() -> None:
    """Seven probes of a server that never answers hold seven slots of
    eight, a keep-alive connection the eighth: a new client takes the
    waiting one's slot, and every probe still gets its answer."""
    with servers.ScriptedServer(servers.silent) as silent:
        names = [f"quiet{i}" for i in range(7)]
        targets = [arg for name in names for arg in ("--target", f"{name}=127.0.0.1:{silent.port}")]
        with Sidecar(*targets, "-t", "6", "--max-connections", "8") as sidecar:
            idle = keep_alive(sidecar.port)
            answers: List[object] = []

            def probe(name: str) -> None:
                try:
                    answers.append(sidecar.get(f"/{name}/ping", timeout=30)[0])
                except OSError as exc:  # cut off: what must not happen
                    answers.append(exc)

            probes = [threading.Thread(target=probe, args=(name,)) for name in names]
            for thread in probes:
                thread.start()
            try:
                wait_until(lambda: silent.accepted >= 7, LIMIT, "seven probes in flight")
                status, elapsed = timed_healthz(sidecar)
                assert status == 200 and elapsed < 3, (status, elapsed)
                wait_until(lambda: is_closed(idle), LIMIT, "the waiting connection closed")
            finally:
                for thread in probes:
                    thread.join(30)
                idle.close()
    assert answers == [503] * 7, answers  # each answered when -t passed, none evicted


def test_the_listen_backlog_holds_a_burst_of_max_connections(fpm: FpmPool) -> None:
    """While serve cannot accept (stopped here, busy in real life), a
    burst of max_connections connects completes in the kernel's backlog;
    socketserver's backlog of 5 drops the SYNs past the sixth."""
    with Sidecar(*target(fpm), "--max-connections", "16") as sidecar:
        assert sidecar.process is not None
        burst = []
        sidecar.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(16):
                conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                conn.setblocking(False)
                assert conn.connect_ex(("127.0.0.1", sidecar.port)) in (0, errno.EINPROGRESS)
                burst.append(conn)

            def all_connected() -> bool:
                _, writable, _ = select.select([], burst, [], 0)
                return len(writable) == len(burst)

            wait_until(all_connected, 5, "16 connections completed while serve is stopped")
            assert all(conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for conn in burst)
        finally:
            sidecar.process.send_signal(signal.SIGCONT)
        for conn in burst:
            conn.setblocking(True)
            conn.settimeout(LIMIT)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
        statuses = [read_to_end(conn).split(b" ", 2)[1] for conn in burst]
        for conn in burst:
            conn.close()
    assert statuses == [b"200"] * 16


# --- 2. a request body never becomes the next request ---------------------------------

SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: sidecar\r\n\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: %d\r\n" % len(SMUGGLED),
        b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED),
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: identity\r\n",
        b"Expect: 100-continue\r\nContent-Length: %d\r\n" % len(SMUGGLED),
        b"Expect: 100-continue\r\n",
    ],
    ids=["content-length", "two-lengths", "chunked", "identity", "expect-with-length", "expect"],
)
def test_a_request_body_is_refused_never_read_as_a_request(fpm: FpmPool, headers: bytes) -> None:
    with Sidecar(*target(fpm)) as sidecar, connect(sidecar.port) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n" + headers + b"\r\n" + SMUGGLED)
        answer = read_to_end(conn)  # and the server closed the connection
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"HTTP/1.") == 1 and b"100 Continue" not in answer, answer
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert body.startswith(b"400 no request body") and body.count(b"\n") == 1, body


def test_a_zero_length_body_is_no_body(fpm: FpmPool) -> None:
    with Sidecar(*target(fpm)) as sidecar, connect(sidecar.port) as conn:
        for _ in range(2):  # and the connection stays usable
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\nContent-Length: 0\r\n\r\n")
            assert read_response(conn)[0] == 200


# --- 3. every malformed request line gets an HTTP answer ------------------------------


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET http://[x/ping HTTP/1.1", 400),  # urlsplit raised: no answer at all
        (b"GET /healthz\x00 HTTP/1.1", 400),
        (b"GET /\x1b[31mhealthz HTTP/1.1", 400),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1", 414),
        (b"GET", 400),
        (b"GET /healthz", 400),  # HTTP/0.9: it had a body and no status line
        (b"GET healthz HTTP/1.1", 400),
        (b"GET http://sidecar/healthz HTTP/1.1", 400),
        (b"OPTIONS * HTTP/1.1", 400),
        (b"GET  /healthz HTTP/1.1", 400),
    ],
    ids=[
        "open-bracket",
        "nul",
        "escape",
        "70-kb",
        "method-alone",
        "http-0.9",
        "no-slash",
        "absolute",
        "asterisk",
        "two-spaces",
    ],
)
def test_a_malformed_request_line_gets_an_answer(fpm: FpmPool, line: bytes, status: int) -> None:
    with Sidecar(*target(fpm)) as sidecar:
        with connect(sidecar.port) as conn:
            conn.sendall(line + b"\r\nHost: sidecar\r\n\r\n")
            answer = read_to_end(conn)
        shown = answer[:300]
        assert answer.startswith(b"HTTP/1.") and answer.split(b" ", 2)[1] == b"%d" % status, shown
        head, body = answer.split(b"\r\n\r\n", 1)
        assert b"\r\nConnection: close" in head and body.count(b"\n") == 1 and body.isascii(), shown
        assert sidecar.get("/healthz")[0] == 200
        assert sidecar.stop() == 0
    assert "Traceback" not in sidecar.stderr and "failed" not in sidecar.stderr, sidecar.stderr[-500:]


# --- 4. nothing a client or a server sends forges a log line --------------------------


def test_nothing_a_client_or_a_server_sends_forges_a_log_line() -> None:
    """journald ends a record at a newline or a NUL, and splits a line
    longer than its LineMax (48 KiB) into several: each line serve writes
    must be one short printable line whatever the peers sent."""
    forged = b"\n<0>forged\x00<0>forged\r<0>forged"
    reply = servers.fastcgi_reply(b"Status: 500 " + forged + b"\r\n\r\n" + forged, stderr=forged)
    with (
        servers.ScriptedServer(servers.responds(reply)) as hostile,
        Sidecar("--target", f"bad=127.0.0.1:{hostile.port}") as sidecar,
    ):
        lines = [
            b"GET http://[x/ping HTTP/1.1",
            b"GET http://[" + b"a" * 49000 + b"<0>forged]/ping HTTP/1.1",
            b"GET /ping\x00<0>forged HTTP/1.1",
            b"GET /ping HTTP/1.1\r\nX: \x00<0>forged",
        ]
        answers = []
        for line in lines:
            with connect(sidecar.port) as conn:
                conn.sendall(line + b"\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
                answers.append(read_to_end(conn)[:9])
        assert sidecar.get("/ping")[0] == 503  # logged: none -> CRITICAL
        assert sidecar.get("/status")[0] == 503
        assert sidecar.stop() == 0
    written = sidecar.stderr.split("\n")
    assert written[-1] == "" and len(written) > 3, sidecar.stderr[-500:]
    for line in written[:-1]:
        assert re.match(r"<[46]>", line) and line.isprintable() and len(line) < 1100, line[:300]
    assert answers == [b"HTTP/1.1 "] * len(lines)


# --- 5. a status page of 50,000 processes ----------------------------------------------


def test_per_process_series_are_capped(tmp_path: Path) -> None:
    processes = ",".join(
        f'{{"pid":{100000 + n},"state":"Idle","requests":{n},"request duration":5}}' for n in range(50000)
    )
    page = (
        '{"pool":"huge","process manager":"static","start time":1700000000,"start since":60,'
        '"accepted conn":50000,"listen queue":0,"max listen queue":0,"listen queue len":0,'
        '"idle processes":50000,"active processes":0,"total processes":50000,'
        f'"max active processes":1,"max children reached":0,"slow requests":0,"processes":[{processes}]}}'
    )
    reply = servers.fastcgi_reply(b"Content-Type: application/json\r\n\r\n" + page.encode())
    with (
        servers.ScriptedServer(servers.responds(reply)) as huge,
        Sidecar("--target", f"huge=127.0.0.1:{huge.port}", "--full", "-t", "10") as sidecar,
    ):
        status, body, _ = sidecar.get("/metrics", timeout=60)
    assert status == 200
    lines = body.splitlines()
    slots = set(re.findall(r'^phpfpm_process_\w+\{pool="huge",slot="(\d+)"', body, re.MULTILINE))
    assert slots == {str(n) for n in range(MAX_PROCESSES)} and MAX_PROCESSES == 1000, len(slots)
    pids = set(
        re.findall(r'^phpfpm_process_pid\{pool="huge",slot="\d+",target="huge"\} (\S+)$', body, re.MULTILINE)
    )
    assert pids == {f"{100000 + n}.0" for n in range(MAX_PROCESSES)}, len(pids)  # the first 1000, as values
    assert 'phpfpm_processes_not_exported{pool="huge",target="huge"} 49000.0' in lines
    assert 'phpfpm_total_processes{pool="huge",target="huge"} 50000.0' in lines
    assert len(body) < 2_000_000, len(body)


# --- 6. a hostile --config file --------------------------------------------------------


def _fifo(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "fifo")
    return str(tmp_path / "fifo")


def _file(content: bytes) -> Callable[[Path], str]:
    def make(tmp_path: Path) -> str:
        path = tmp_path / "serve.toml"
        path.write_bytes(content)
        return str(path)

    return make


TARGET_TABLE = b'\n[targets.a]\naddress = "127.0.0.1:9"\n'


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp_path: "/dev/zero", "/dev/zero: not a regular file"),
        (_fifo, "fifo: not a regular file"),
        (str, ": not a regular file"),
        (
            _file(b"x = " + b"[" * 3000 + b"]" * 3000 + TARGET_TABLE),
            "serve.toml: not valid TOML: nested too deeply",
        ),
        (
            _file(b"x = " + b"{a = " * 3000 + b"1" + b"}" * 3000 + TARGET_TABLE),
            "not valid TOML: nested too deeply",
        ),
        (_file(b"# padding\n" * 200_000 + TARGET_TABLE), "serve.toml: larger than 1 MiB"),
        (_file(b"timeout = " + b"9" * 5000 + TARGET_TABLE), "serve.toml: not valid TOML: "),
        (_file(b"# \xff\xfe" + TARGET_TABLE), "serve.toml: not valid TOML: not UTF-8"),
    ],
    ids=["dev-zero", "fifo", "directory", "deep-array", "deep-table", "2-mb", "huge-integer", "not-utf-8"],
)
def test_a_hostile_config_file_is_one_line_and_exit_2(
    tmp_path: Path, make: Callable[[Path], str], message: str
) -> None:
    path = make(tmp_path)
    # A regression must not take the machine's memory with it (/dev/zero).
    command = ["prlimit", f"--as={1 << 30}", *Sidecar("--config", path).command]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert time.monotonic() - started < 10
    assert done.returncode == 2, done
    assert done.stderr.startswith("check_fastcgi serve: --config ") and message in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_config_file_of_its_size_limit_is_read(fpm: FpmPool, tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    table = f'[targets.www]\naddress = "127.0.0.1:{fpm.port}"\n'.encode()
    config.write_bytes(b"#" * ((1 << 20) - len(table) - 1) + b"\n" + table)
    assert config.stat().st_size == 1 << 20
    with Sidecar("--config", str(config)) as sidecar:
        assert json.loads(sidecar.get("/ping?format=json")[1])["state"] == "OK"


def test_a_pool_name_that_utf8_cannot_encode_costs_no_other_target(tmp_path: Path) -> None:
    """JSON's \\ud800 is a lone surrogate: as a label it made the whole
    exposition fail to encode, every target's metrics with it."""
    page = (
        '{"pool":"bad\\ud800","process manager":"static\\udfff","start time":1700000000,"start since":60,'
        '"accepted conn":1,"listen queue":0,"max listen queue":0,"listen queue len":0,'
        '"idle processes":1,"active processes":0,"total processes":1,'
        '"max active processes":1,"max children reached":0,"slow requests":0,'
        '"processes":[{"pid":7,"state":"Idle\\ud800","requests":1,"request duration":5}]}'
    )
    reply = servers.fastcgi_reply(b"Content-Type: application/json\r\n\r\n" + page.encode())
    with (
        servers.ScriptedServer(servers.responds(reply)) as bad,
        Sidecar("--target", f"bad=127.0.0.1:{bad.port}", "--full", "-t", "10") as sidecar,
    ):
        status, body, _ = sidecar.get("/metrics", timeout=60)
        _, text, _ = sidecar.get("/bad/status")
    assert status == 200, body
    assert 'phpfpm_up{pool="bad?",target="bad"} 1.0' in body.splitlines()
    assert "\ud800" not in text


def test_a_metric_given_twice_is_refused_as_the_plugin_refuses_it() -> None:
    """serve took the last of -w m=1 -w m=2 where the plugin refuses both."""
    done = subprocess.run(
        [CHECK, "serve", "-H", "127.0.0.1", "-w", "active_percent=80", "-w", "active_percent=90"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done
    assert "-w active_percent is given twice (80 and 90): keep one" in done.stderr
