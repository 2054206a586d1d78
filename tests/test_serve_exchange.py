"""One exchange path, in-process: ``Prober.exchange`` (single flight on a
key, a turn among max_inflight, one deadline for both), which probes and
/metrics' fetches share; and ``fetch_status``, the one status page fetch
of the status mode and of the exporter, whose errors tell apart what
each caller words differently."""

from __future__ import annotations

import io
import socket
import threading
import time
from typing import Iterator, List, Tuple

import pytest

import fcgi_wire
from check_fastcgi.fpm.status_page import (
    NoStatusPage,
    NotAStatusPage,
    PoolStatus,
    StatusPageError,
    StatusPageHTTPError,
    fetch_status,
)
from check_fastcgi.modes.handshake import HandshakeOptions
from check_fastcgi.modes.ping import PingOptions
from check_fastcgi.modes.status import StatusOptions
from check_fastcgi.serve.config import ServeConfig, TargetConfig
from check_fastcgi.serve.probes import Busy, Prober
from check_fastcgi.target import Limits, Target
from tests import servers

PAGE = (
    b'{"pool":"www","process manager":"static","start time":1700000000,"start since":60,'
    b'"accepted conn":5,"listen queue":0,"max listen queue":0,"listen queue len":0,'
    b'"idle processes":1,"active processes":1,"total processes":2,'
    b'"max active processes":1,"max children reached":0,"slow requests":0}'
)


def prober(max_inflight: int = 2) -> Prober:
    target = TargetConfig(
        name="www",
        address=fcgi_wire.TcpAddress("127.0.0.1", 9),
        ping=PingOptions(),
        status=StatusOptions(),
        handshake=HandshakeOptions(),
    )
    config = ServeConfig(listen=("127.0.0.1", 0), targets=(target,), max_inflight=max_inflight)
    return Prober(config, log=io.StringIO())


class Blocked:
    """Work that blocks until released, counting its runs."""

    def __init__(self, value: str = "done") -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.runs = 0
        self.value = value

    def __call__(self) -> str:
        self.runs += 1
        self.started.set()
        assert self.release.wait(10)
        return self.value


@pytest.fixture
def background() -> Iterator[List[threading.Thread]]:
    threads: List[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(10)


def start(threads: List[threading.Thread], target: object) -> None:
    thread = threading.Thread(target=target)  # type: ignore[arg-type]
    thread.start()
    threads.append(thread)


def test_callers_with_one_key_share_one_run(background: List[threading.Thread]) -> None:
    probe, work = prober(), Blocked()
    target = probe.config.targets[0]
    results: List[str] = []
    for _ in range(5):
        start(background, lambda: results.append(probe.exchange(target, "key", work, time.monotonic() + 5)))
    assert work.started.wait(5)
    time.sleep(0.1)  # the others join the flight
    work.release.set()
    for thread in background:
        thread.join(10)
    assert results == ["done"] * 5 and work.runs == 1


def test_a_turn_is_waited_for_until_the_deadline_only(background: List[threading.Thread]) -> None:
    """max_inflight 1: an exchange under another key waits for the turn,
    and gives up at its deadline."""
    probe, holder = prober(max_inflight=1), Blocked()
    target = probe.config.targets[0]
    start(background, lambda: probe.exchange(target, "one", holder, time.monotonic() + 5))
    assert holder.started.wait(5)
    started = time.monotonic()
    with pytest.raises(Busy, match="1 exchanges with www in flight already"):
        probe.exchange(target, "other", lambda: "never", started + 0.3)
    assert 0.25 < time.monotonic() - started < 2
    holder.release.set()
    assert probe.exchange(target, "other", lambda: "now", time.monotonic() + 1) == "now"


def test_one_that_shares_a_flight_waits_until_its_deadline_and_grace(
    background: List[threading.Thread],
) -> None:
    probe, leader = prober(), Blocked()
    target = probe.config.targets[0]
    start(background, lambda: probe.exchange(target, "key", leader, time.monotonic() + 5))
    assert leader.started.wait(5)
    started = time.monotonic()
    with pytest.raises(Busy, match="did not finish in time"):
        probe.exchange(target, "key", lambda: "never run", started + 0.2, grace=0.2)
    assert 0.35 < time.monotonic() - started < 2
    leader.release.set()


def test_the_error_of_a_shared_run_reaches_every_caller(background: List[threading.Thread]) -> None:
    probe, gate = prober(), threading.Event()
    target = probe.config.targets[0]
    errors: List[BaseException] = []

    def failing() -> str:
        assert gate.wait(10)
        raise fcgi_wire.RemoteProtocolError("garbage")

    def call() -> None:
        try:
            probe.exchange(target, "key", failing, time.monotonic() + 5)
        except fcgi_wire.ProtocolError as exc:
            errors.append(exc)

    for _ in range(3):
        start(background, call)
    time.sleep(0.2)
    gate.set()
    for thread in background:
        thread.join(10)
    assert len(errors) == 3 and len({id(error) for error in errors}) == 1


# --- fetch_status ----------------------------------------------------------------------


def fetch(reply: bytes, full: bool = False) -> Tuple[fcgi_wire.Response, PoolStatus]:
    with servers.ScriptedServer(servers.responds(servers.fastcgi_reply(reply))) as fake:
        limits = Limits(timeout=5, deadline=time.monotonic() + 5)
        return fetch_status(Target(servers.address_of(fake), limits), "/status", full)


def test_a_page_is_fetched_and_read() -> None:
    response, status = fetch(b"Content-Type: application/json\r\n\r\n" + PAGE)
    assert response.status == 200 and status.pool == "www" and status.figures["accepted_conn"] == 5


@pytest.mark.parametrize("code", [403, 404])
def test_no_page_at_the_path(code: int) -> None:
    with pytest.raises(NoStatusPage) as raised:
        fetch(b"Status: %d Nope\r\n\r\nFile not found." % code)
    assert raised.value.status == code and str(raised.value) == f"HTTP {code}"


def test_another_http_status_keeps_the_start_of_its_body() -> None:
    with pytest.raises(StatusPageHTTPError) as raised:
        fetch(b"Status: 500 Oops\r\n\r\n" + b"\xff broken " + b"x" * 1000)
    assert raised.value.status == 500 and raised.value.excerpt.startswith("\ufffd broken xx")
    assert len(raised.value.excerpt.encode("utf-8")) <= 402  # 400 bytes, one replaced by 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"pong", "not JSON"), (b'{"a": 1}', "no 'pool'"), (b'{"pool":"www"}', "without 'accepted conn'")],
)
def test_a_200_that_is_no_status_page(body: bytes, reason: str) -> None:
    with pytest.raises(NotAStatusPage) as raised:
        fetch(b"Content-Type: text/plain\r\n\r\n" + body)
    assert reason in str(raised.value) and raised.value.excerpt == body.decode()


def test_every_answer_that_is_no_page_is_a_status_page_error() -> None:
    for error in (NoStatusPage, StatusPageHTTPError, NotAStatusPage):
        assert issubclass(error, StatusPageError)
    with pytest.raises(fcgi_wire.FastCGIError):  # no answer at all: fcgi_wire's own
        fetch_status(
            Target(fcgi_wire.TcpAddress("127.0.0.1", 9), Limits(1, time.monotonic() + 1)), "/s", False
        )


def test_full_asks_for_the_process_list() -> None:
    seen: List[bytes] = []

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        records = servers.read_request(conn)
        seen.extend(record.content for record in records if record.type == fcgi_wire.RecordType.PARAMS)
        conn.sendall(servers.fastcgi_reply(b"Content-Type: application/json\r\n\r\n" + PAGE))

    with servers.ScriptedServer(handler) as fake:
        target = Target(servers.address_of(fake), Limits(5, time.monotonic() + 5))
        fetch_status(target, "/status", True)
    assert b"json&full" in b"".join(seen)
