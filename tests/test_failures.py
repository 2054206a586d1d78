"""Failures with real sockets: each gives the state and the one line the README
states, and returns on time."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

import fcgi_wire
from tests import servers
from tests.conftest import assert_plugin_output, run_check
from tests.fpm import free_port


def test_closed_port_is_critical_connection_refused() -> None:
    port = free_port()
    outcome = run_check("handshake", "-p", str(port))
    assert_plugin_output(outcome)
    assert outcome.code == 2
    assert outcome.first_line == f"FASTCGI CRITICAL - connect to 127.0.0.1:{port}: connection refused"
    assert outcome.elapsed < 1.0


def test_closed_port_on_ipv6() -> None:
    port = free_port("::1")
    outcome = run_check("handshake", "-H", "::1", "-p", str(port))
    assert outcome.code == 2
    assert outcome.first_line == f"FASTCGI CRITICAL - connect to [::1]:{port}: connection refused"


def test_missing_socket_file_is_critical(tmp_path: Path) -> None:
    path = tmp_path / "nope.sock"
    outcome = run_check("handshake", "-s", str(path))
    assert_plugin_output(outcome)
    assert outcome.code == 2
    assert outcome.summary.startswith(f"FASTCGI CRITICAL - connect to {path}: no such socket file (")


def test_stale_socket_file_is_critical(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)  # bound, never listening: what a dead server leaves behind
    outcome = run_check("handshake", "-s", path)
    assert outcome.code == 2
    assert "connection refused (the socket file exists but nothing listens on it)" in outcome.first_line


def test_socket_without_permission_is_unknown_with_the_fix() -> None:
    directory = tempfile.mkdtemp(prefix="fcgi-perm-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "fpm.sock")
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(path)
        listener.listen()
        os.chmod(path, 0)
        # As root, drop every capability so the mode bits apply, as they would
        # to a monitoring user outside the socket's group.
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []
        outcome = run_check("handshake", "-s", path, prefix=prefix)
    finally:
        listener.close()
        os.unlink(path)
        os.rmdir(directory)
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert outcome.first_line.startswith(f"FASTCGI UNKNOWN - connect to {path}: permission denied (")
    assert "is the monitoring user in the socket's group?" in outcome.first_line


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_server_that_never_answers_returns_by_the_deadline(family: str) -> None:
    with servers.ScriptedServer(servers.silent, family=family) as server:
        outcome = run_check("handshake", *server.args, "-t", "2")
    assert_plugin_output(outcome)
    assert outcome.code == 2
    assert (
        "within 2s (-t): connection accepted, but nothing answered (every worker busy, or not a FastCGI server?)"
        in outcome.first_line
    )
    assert outcome.first_line.startswith("FASTCGI CRITICAL - no reply from ")
    assert 1.9 < outcome.elapsed < 2.5


@pytest.mark.parametrize(("state", "code"), [("warning", 1), ("unknown", 3), ("critical", 2)])
def test_timeout_state(state: str, code: int) -> None:
    with servers.ScriptedServer(servers.silent) as server:
        outcome = run_check("handshake", *server.args, "-t", "0.5", "--timeout-state", state)
    assert outcome.code == code
    assert outcome.first_line.startswith(f"FASTCGI {state.upper()} - no reply from ")
    assert "within 0.5s" in outcome.first_line


def test_connect_timeout_reads_apart_from_a_busy_server() -> None:
    server = servers.ScriptedServer(family="tcp", accept=False)
    try:
        server.fill_backlog()
        outcome = run_check("handshake", *server.args, "-t", "3", "--connect-timeout", "0.5")
    finally:
        server.stop()
    assert outcome.code == 2
    assert (
        outcome.first_line
        == f"FASTCGI CRITICAL - connect to 127.0.0.1:{server.port}: timed out after 0.5s (--connect-timeout)"
    )
    assert outcome.elapsed < 1.5


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (
            servers.answers(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            "FASTCGI CRITICAL - protocol error: bad FastCGI version 72 in record header (the peer seems to speak HTTP, not FastCGI) (from {})",
        ),
        (
            servers.answers(b"\x01\x0a\x00\x00\x00\x10\x00\x00\x0f"),
            "FASTCGI CRITICAL - protocol error: truncated FCGI_GET_VALUES_RESULT record: connection closed after 9 of 24 bytes (from {})",
        ),
        (
            servers.answers_and_waits(
                fcgi_wire.encode_record(fcgi_wire.RecordType.GET_VALUES_RESULT, 0, b"\x0f\x7fFCGI")
            ),
            "FASTCGI CRITICAL - protocol error: name-value pair truncated: lengths 15+127 run 138 bytes past the record (from {})",
        ),
        (
            servers.answers(fcgi_wire.encode_record(fcgi_wire.RecordType.STDOUT, 1, b"hi")),
            "FASTCGI CRITICAL - protocol error: FCGI_STDOUT record for a request that is not open (from {})",
        ),
        (
            servers.hangs_up,
            "FASTCGI CRITICAL - {}: connection closed before the reply was complete (0 bytes received)",
        ),
        (
            servers.resets,
            "FASTCGI CRITICAL - {}: connection reset by the server before the reply was complete (0 bytes received)",
        ),
    ],
    ids=["http", "truncated", "lying-pair", "wrong-record", "hang-up", "reset"],
)
def test_bad_replies_are_critical(behaviour: servers.Handler, expected: str) -> None:
    with servers.ScriptedServer(behaviour) as server:
        outcome = run_check("handshake", *server.args, "-t", "3")
    assert_plugin_output(outcome)
    assert outcome.code == 2
    assert outcome.first_line == expected.format(f"127.0.0.1:{server.port}")


def test_unknown_type_answer_is_ok() -> None:
    reply = fcgi_wire.encode_record(fcgi_wire.RecordType.UNKNOWN_TYPE, 0, b"\x09" + bytes(7))
    with servers.ScriptedServer(servers.answers_and_waits(reply)) as server:
        outcome = run_check("handshake", *server.args)
    assert outcome.code == 0
    assert "speaks FastCGI, but not management records (FCGI_UNKNOWN_TYPE)" in outcome.first_line


def test_all_three_values_become_perfdata() -> None:
    values = fcgi_wire.encode_pairs(
        [("FCGI_MAX_CONNS", "10"), ("FCGI_MAX_REQS", "50"), ("FCGI_MPXS_CONNS", "1")]
    )
    reply = fcgi_wire.encode_record(fcgi_wire.RecordType.GET_VALUES_RESULT, 0, values)
    with servers.ScriptedServer(servers.answers_and_waits(reply)) as server:
        outcome = run_check("handshake", *server.args)
    assert outcome.code == 0
    assert "FCGI_MAX_CONNS=10, FCGI_MAX_REQS=50, FCGI_MPXS_CONNS=1" in outcome.first_line
    assert {k: v for k, v in outcome.perfdata.items() if k != "time"} == {
        "max_conns": "10;;;0",
        "max_reqs": "50;;;0",
        "mpxs_conns": "1;;;0",
    }


def test_reply_size_cap() -> None:
    big = fcgi_wire.encode_record(fcgi_wire.RecordType.GET_VALUES_RESULT, 0, bytes(60000))
    with servers.ScriptedServer(servers.answers_and_waits(big)) as server:
        outcome = run_check("handshake", *server.args, "--max-reply-bytes", "4096")
    assert outcome.code == 2
    assert outcome.first_line.startswith(
        "FASTCGI CRITICAL - protocol error: reply larger than the cap of 4096 bytes"
    )


def test_unresolvable_name_is_unknown() -> None:
    outcome = run_check("handshake", "-H", "no-such-host.invalid", "-t", "5")
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert outcome.first_line.startswith("FASTCGI UNKNOWN - cannot resolve 'no-such-host.invalid': ")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("mode", ["handshake", "ping", "status"])
def test_a_signal_ends_the_check_at_once_with_one_line(signame: str, mode: str) -> None:
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import time  # noqa: PLC0415

    from tests.conftest import CHECK  # noqa: PLC0415
    from tests.fpm import wait_until  # noqa: PLC0415

    with servers.ScriptedServer(servers.silent) as server:
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONWARNINGS": "error::ResourceWarning",
            "XDG_STATE_HOME": "/nonexistent",
        }
        proc = subprocess.Popen(
            [CHECK, mode, *server.args, "-t", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        wait_until(lambda: server.accepted >= 1, 10, "the plugin's connection")
        sent = time.monotonic()
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=5)
        took = time.monotonic() - sent
    assert proc.returncode == 3
    assert out == f"FASTCGI UNKNOWN - interrupted by {signame}\n"
    assert err == ""
    assert took < 1.0


# --- diagnosis: what a failure says, and what -v shows ------------------------------------------


def test_a_silent_server_may_be_busy_or_not_fastcgi_and_v_says_what_went() -> None:
    with servers.ScriptedServer(servers.silent) as server:
        outcome = run_check("ping", *server.args, "-t", "1", "-v")
    assert outcome.code == 2
    assert "(every worker busy, or not a FastCGI server?)" in outcome.first_line
    lines = outcome.stdout.splitlines()
    assert any(line.startswith("sent: a FastCGI request of ") for line in lines), lines
    assert "received: nothing" in lines


def test_v_shows_the_first_bytes_of_a_banner() -> None:
    with servers.ScriptedServer(servers.answers_and_waits(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")) as server:
        outcome = run_check("ping", *server.args, "-v")
    assert outcome.code == 2
    assert outcome.first_line.startswith("FASTCGI CRITICAL - protocol error: bad FastCGI version 83")
    assert "received: 30 bytes, starting 'SSH-2.0-OpenSSH_9.2p1 Debian\\x0d\\x0a'" in outcome.stdout


@pytest.mark.parametrize("kind", ["a regular file", "a directory"])
def test_a_path_that_is_not_a_socket_says_so(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "php-fpm.sock"
    if kind == "a directory":
        path.mkdir()
    else:
        path.write_text("")
    outcome = run_check("ping", "-s", str(path))
    assert outcome.code == 2
    assert (
        outcome.summary
        == f"FASTCGI CRITICAL - connect to {path}: not a socket ({kind}) (is -s the pool's listen path?)"
    )
