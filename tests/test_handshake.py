"""handshake against a real php-fpm on 127.0.0.1, [::1] and a Unix socket."""

from __future__ import annotations

import re
from typing import List

import fcgi_wire
from tests.conftest import assert_plugin_output, run_check
from tests.fpm import FpmPool


def test_handshake_ok_reports_mpxs_conns(fpm_target: List[str]) -> None:
    outcome = run_check("handshake", *fpm_target)
    assert_plugin_output(outcome)
    assert outcome.code == 0
    assert re.match(
        r"FASTCGI OK - \S+ answered FCGI_GET_VALUES in \d+\.\d ms: FCGI_MPXS_CONNS=0 \| ", outcome.first_line
    )
    assert outcome.perfdata["mpxs_conns"] == "0;;;0"
    assert re.fullmatch(r"\d+\.\d+s;;;0", outcome.perfdata["time"])


def test_handshake_names_the_target(fpm: FpmPool) -> None:
    assert (
        f"[::1]:{fpm.port6} answered"
        in run_check("handshake", "-H", "[::1]", "-p", str(fpm.port6)).first_line
    )
    assert f"{fpm.socket_path} answered" in run_check("handshake", "-H", str(fpm.socket_path)).first_line
    assert (
        f"127.0.0.1:{fpm.port} answered" in run_check("handshake", "-H", f"127.0.0.1:{fpm.port}").first_line
    )


def test_response_time_thresholds(fpm: FpmPool) -> None:
    target = fpm.targets()["tcp"]
    warn = run_check("handshake", *target, "-w", "0.0000001", "-c", "5")
    assert warn.code == 1
    assert re.match(
        rf"FASTCGI WARNING - 127.0.0.1:{fpm.port}: response time [\d.e-]+s \(outside range 0:1e-07\)",
        warn.first_line,
    )
    assert warn.perfdata["time"].endswith(";1e-07;5;0")
    crit = run_check("handshake", *target, "-w", "0.0000001", "-c", "0.0000001")
    assert crit.code == 2
    assert crit.first_line.startswith("FASTCGI CRITICAL - ")
    ok = run_check("handshake", *target, "-w", "5", "-c", "10")
    assert ok.code == 0


def test_verbose_lists_values_and_moves_perfdata(fpm: FpmPool) -> None:
    outcome = run_check("handshake", *fpm.targets()["unix"], "-v")
    lines = outcome.stdout.splitlines()
    assert outcome.code == 0
    assert "value: FCGI_MPXS_CONNS=0" in lines
    assert lines[-1].startswith("| ")
    assert "|" not in lines[0]


def test_fcgi_wire_client_against_fpm(fpm: FpmPool) -> None:
    """The library on its own: what the plugin relies on."""
    reply = fcgi_wire.get_values(fcgi_wire.TcpAddress("::1", fpm.port6), timeout=5)
    assert reply.values == {"FCGI_MPXS_CONNS": "0"}
    assert reply.management_supported
    assert 0 < reply.elapsed < 5
