"""The three modes against every FastCGI server Debian and PyPI give us.
PHP-FPM has its own test modules; these are the others."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Iterator, Type

import pytest

import fcgi_wire
from tests.conftest import assert_plugin_output, run_check
from tests.interop import Fcgiwrap, FlupWsgi, PhpCgi, Server

EXPECTED_VALUES = {
    Fcgiwrap: "FCGI_MAX_CONNS=1, FCGI_MAX_REQS=1, FCGI_MPXS_CONNS=0",
    PhpCgi: "FCGI_MAX_CONNS=2, FCGI_MAX_REQS=2, FCGI_MPXS_CONNS=0",  # from PHP_FCGI_CHILDREN
    FlupWsgi: None,  # flup answers, but with no values
}
BODIES = {Fcgiwrap: "hello from cgi", PhpCgi: "hello from php-cgi", FlupWsgi: "hello from wsgi"}


@pytest.fixture(scope="module", params=[Fcgiwrap, PhpCgi, FlupWsgi], ids=["fcgiwrap", "php-cgi", "flup"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind: Type[Server] = request.param
    with kind(tmp_path_factory.mktemp(kind.__name__.lower())) as started:
        yield started


def test_handshake(server: Server) -> None:
    outcome = run_check("handshake", *server.args, "-t", "3")
    assert_plugin_output(outcome)
    assert outcome.code == 0, outcome
    values = EXPECTED_VALUES[type(server)]
    if values is None:
        assert outcome.summary.endswith("with no values")
    else:
        assert outcome.summary.endswith(f": {values}")


def test_ping_runs_the_script(server: Server) -> None:
    outcome = run_check(
        "ping",
        *server.args,
        "--path",
        server.script_name,
        "--script-filename",
        server.script,
        "-e",
        BODIES[type(server)],
    )
    assert_plugin_output(outcome)
    assert outcome.code == 0, outcome


def test_status_is_unknown_without_fpm(server: Server) -> None:
    outcome = run_check("status", *server.args, "--state-file", "/dev/null/x")
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert "not a PHP-FPM status page" in outcome.first_line or "no status page" in outcome.first_line


def test_libfcgi_ignores_an_unpadded_get_values(tmp_path: Path) -> None:
    """Why fcgi_wire pads GET_VALUES: the same record without padding gets
    no answer from fcgiwrap, with padding it gets one at once."""
    content = fcgi_wire.encode_pairs([(name, "") for name in fcgi_wire.MANAGEMENT_NAMES])
    assert len(content) % 8 == 0

    def first_reply(server: Server, padding: int) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as conn:
            conn.sendall(struct.pack("!BBHHBx", 1, 9, 0, len(content), padding) + content + bytes(padding))
            try:
                return conn.recv(100)
            except socket.timeout:
                return b""

    with Fcgiwrap(tmp_path) as fcgiwrap:
        assert first_reply(fcgiwrap, 0) == b""
        assert first_reply(fcgiwrap, 8)[:2] == bytes([1, fcgi_wire.RecordType.GET_VALUES_RESULT])
