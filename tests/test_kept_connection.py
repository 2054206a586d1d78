"""Connections kept open for several requests (FCGI_KEEP_CONN): one after
another, and multiplexed on request ids against a server that says
FCGI_MPXS_CONNS=1."""

from __future__ import annotations

import time

import pytest

import fcgi_wire
from fcgi_wire import RecordType, encode_record
from tests import servers
from tests.fpm import FpmPool

PING = {"SCRIPT_NAME": "/ping", "SCRIPT_FILENAME": "/ping", "REQUEST_METHOD": "GET"}


def script(name: str) -> dict:
    return {"SCRIPT_NAME": name, "SCRIPT_FILENAME": name, "REQUEST_METHOD": "POST"}


@pytest.mark.parametrize("family", ["tcp", "ipv6", "unix"])
def test_requests_one_after_another_on_one_connection(family: str) -> None:
    before = servers.open_fds()
    with servers.MultiplexingServer(family=family) as server:
        with fcgi_wire.open_connection(servers.address_of(server), timeout=10) as conn:
            bodies = [conn.request(script(f"/s{n}"), b"in%d" % n, timeout=10).body for n in range(3)]
            assert not conn.closed
        assert conn.closed
        assert server.connections == 1
        assert server.requests == 3
    assert servers.open_fds() == before
    assert [body.split(b" ", 1)[1] for body in bodies] == [
        b"script=/s0 body=in0",
        b"script=/s1 body=in1",
        b"script=/s2 body=in2",
    ]


def test_a_batch_is_multiplexed_and_answered_interleaved() -> None:
    with (
        servers.MultiplexingServer() as server,
        fcgi_wire.open_connection(servers.address_of(server)) as conn,
    ):
        assert conn.get_values().values["FCGI_MPXS_CONNS"] == "1"
        batch = [(script(f"/m{n}"), b"x" * n) for n in range(6)]
        responses = conn.request_many(batch, timeout=10)
        again = conn.request(script("/after"), timeout=10)
        assert server.max_in_flight == 6  # all six were open at once
        assert server.connections == 1
    ids = []
    for n, response in enumerate(responses):
        assert isinstance(response, fcgi_wire.Response)
        head, script_part, body = response.body.split(b" ", 2)
        ids.append(int(head.split(b"=")[1]))
        assert (script_part, body) == (b"script=/m%d" % n, b"body=" + b"x" * n)
    assert len(set(ids)) == 6  # each on its own request id
    assert again.body.endswith(b"script=/after body=")


def test_a_refusal_ends_only_its_own_request() -> None:
    refused = {**script("/no"), "REFUSE": "1"}
    with (
        servers.MultiplexingServer() as server,
        fcgi_wire.open_connection(servers.address_of(server)) as conn,
    ):
        with pytest.raises(fcgi_wire.Overloaded):
            conn.request_many([(script("/a"), b""), (refused, b""), (script("/b"), b"")])
        outcomes = conn.request_many([(script("/a"), b""), (refused, b"")], return_exceptions=True)
        assert not conn.closed
        assert conn.request(script("/c")).status == 200
    assert isinstance(outcomes[0], fcgi_wire.Response)
    assert isinstance(outcomes[1], fcgi_wire.Overloaded)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (servers.answers_and_waits(b"HTTP/1.1 400 Bad Request\r\n\r\n"), fcgi_wire.RemoteProtocolError),
        (servers.silent, fcgi_wire.Timeout),
        (servers.hangs_up, fcgi_wire.ConnectionClosed),
        (
            servers.answers_and_waits(encode_record(RecordType.STDOUT, 9, b"x")),
            fcgi_wire.RemoteProtocolError,
        ),
    ],
    ids=["garbage", "silent", "hangs-up", "unknown-request-id"],
)
def test_an_error_closes_the_connection(handler: servers.Handler, error: type) -> None:
    before = servers.open_fds()
    with servers.ScriptedServer(handler) as server:
        conn = fcgi_wire.open_connection(servers.address_of(server), timeout=5)
        started = time.monotonic()
        with pytest.raises(error) as caught:
            conn.request(PING, timeout=0.5)
        assert time.monotonic() - started < 3
        assert conn.closed
        with pytest.raises(fcgi_wire.ConnectionClosed, match="the kept connection is closed"):
            conn.request(PING)
    assert servers.open_fds() == before
    assert caught.value.address == f"127.0.0.1:{server.port}"
    if error is fcgi_wire.RemoteProtocolError and b"HTTP" in caught.value.head:
        assert "seems to speak HTTP" in str(caught.value)
    if isinstance(caught.value, fcgi_wire.RemoteProtocolError) and not caught.value.head.startswith(b"HTTP"):
        assert str(caught.value).endswith("FCGI_STDOUT record for request id 9, which is not open")


def test_connect_failures_are_the_usual_ones(tmp_path: object) -> None:
    with pytest.raises(fcgi_wire.SocketNotFound):
        fcgi_wire.open_connection(fcgi_wire.UnixAddress(f"{tmp_path}/none.sock"))


def test_php_fpm_keeps_the_connection_for_requests_in_turn(fpm: FpmPool) -> None:
    """Sequential keep-alive against the real thing (closed at once: a kept
    connection holds one of the pool's workers)."""
    for address in (fcgi_wire.TcpAddress("127.0.0.1", fpm.port), fcgi_wire.UnixAddress(str(fpm.socket_path))):
        before = servers.open_fds()
        with fcgi_wire.open_connection(address, timeout=30) as conn:
            first = conn.request(PING, timeout=30)
            values = conn.get_values(timeout=30)
            second = conn.request(PING, timeout=30)
        assert servers.open_fds() == before
        assert (first.body, second.body) == (b"pong", b"pong")
        assert values.values["FCGI_MPXS_CONNS"] == "0"
        assert fcgi_wire.request(address, PING, timeout=30).body == b"pong"


# --- the codec under it ------------------------------------------------------------------


def test_multiplexer_routes_interleaved_records_by_request_id() -> None:
    mux = fcgi_wire.Multiplexer()
    one, wire_one = mux.start(PING)
    two, wire_two = mux.start(PING, b"body")
    assert (one, two) == (1, 2)
    assert all(r.type != RecordType.BEGIN_REQUEST or r.content[2] == 1 for r in decode(wire_one + wire_two))
    reply = (
        encode_record(RecordType.STDOUT, two, b"Status: 201\r\n\r\ntw")
        + encode_record(RecordType.STDOUT, one, b"\n\non")
        + encode_record(RecordType.STDOUT, two, b"o")
        + encode_record(RecordType.STDOUT, one, b"e")
        + servers.fastcgi_reply(b"", request_id=two)
        + servers.fastcgi_reply(b"", request_id=one)
    )
    done = []
    for byte in range(len(reply)):  # one byte at a time
        done += mux.receive_data(reply[byte : byte + 1])
    assert [(rid, r.status, r.body) for rid, r in done] == [(2, 201, b"two"), (1, 200, b"one")]
    assert mux.in_flight == 0
    three, _ = mux.start(PING)
    assert three == 3


def test_multiplexer_refuses_what_nobody_asked_for() -> None:
    mux = fcgi_wire.Multiplexer()
    mux.start(PING)
    with pytest.raises(
        fcgi_wire.RemoteProtocolError, match="request id 0 with no FCGI_GET_VALUES outstanding"
    ):
        mux.receive_data(encode_record(RecordType.GET_VALUES_RESULT, 0, b""))
    assert mux.broken
    with pytest.raises(fcgi_wire.RemoteProtocolError):
        mux.start(PING)


def test_multiplexer_caps_each_reply() -> None:
    mux = fcgi_wire.Multiplexer()
    rid, _ = mux.start(PING, max_reply_bytes=100)
    with pytest.raises(fcgi_wire.ReplyTooLarge):
        mux.receive_data(encode_record(RecordType.STDOUT, rid, b"x" * 200))


def test_multiplexer_says_when_the_server_hangs_up_early() -> None:
    mux = fcgi_wire.Multiplexer()
    mux.start(PING)
    mux.receive_data(encode_record(RecordType.STDOUT, 1, b"x"))
    with pytest.raises(fcgi_wire.ConnectionClosed, match="1 exchanges unanswered"):
        mux.receive_data(b"")


def decode(wire: bytes) -> list:
    decoder = fcgi_wire.RecordDecoder()
    decoder.feed(wire)
    records = []
    while (record := decoder.next_record()) is not None:
        records.append(record)
    return records
