"""No socket or file descriptor outlives a call to fcgi_wire, whatever the
server did. Counted in /proc/self/fd, in this process."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Callable

import pytest

import fcgi_wire
from tests import servers
from tests.fpm import free_port
from tests.hostile_servers import BEHAVIOURS


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def client_sockets(server_port: int) -> int:
    """Our sockets whose remote end is the server: the client side only (the
    in-process server's accepted ends have the server port as local port)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        for row in table.read().splitlines()[1:]:
            fields = row.split()
            if int(fields[2].split(":")[1], 16) == server_port and fields[9] in ours:
                count += 1
    return count


def calls(address: fcgi_wire.Address) -> list:
    limits = {"timeout": 0.5}
    return [
        lambda: fcgi_wire.get_values(address, **limits),
        lambda: fcgi_wire.request(
            address, {"SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "/x", "REQUEST_METHOD": "GET"}, **limits
        ),
    ]


def no_leak(call: Callable[[], object]) -> None:
    before = open_fds()
    with contextlib.suppress(fcgi_wire.FastCGIError):
        call()
    assert open_fds() == before


@pytest.mark.parametrize(
    ("name", "handler"), [(b[0], b[1]) for b in BEHAVIOURS], ids=[b[0] for b in BEHAVIOURS]
)
def test_no_socket_outlives_a_misbehaving_server(name: str, handler: servers.Handler) -> None:
    with servers.ScriptedServer(handler) as server:
        for call in calls(fcgi_wire.TcpAddress("127.0.0.1", server.port)):
            with contextlib.suppress(fcgi_wire.FastCGIError):
                call()
            assert client_sockets(server.port) == 0


def test_no_descriptor_outlives_connect_failures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stale = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(stale)
    for address in [
        fcgi_wire.TcpAddress("127.0.0.1", free_port()),
        fcgi_wire.TcpAddress("::1", free_port("::1")),
        fcgi_wire.TcpAddress("no-such-host.invalid", 9000),
        fcgi_wire.UnixAddress(str(tmp_path / "missing.sock")),
        fcgi_wire.UnixAddress(stale),
    ]:
        for call in calls(address):
            no_leak(call)


def test_no_descriptor_outlives_a_connect_timeout() -> None:
    server = servers.ScriptedServer(accept=False)
    try:
        server.fill_backlog()
        before = open_fds()
        with pytest.raises(fcgi_wire.Timeout):
            fcgi_wire.get_values(
                fcgi_wire.TcpAddress("127.0.0.1", server.port), timeout=2, connect_timeout=0.2
            )
        assert open_fds() == before
    finally:
        server.stop()
