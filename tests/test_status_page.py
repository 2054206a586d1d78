"""FPM's status page as it really comes: invalid JSON, wrapped durations,
new states. The parser on its own, then the plugin over real FastCGI from a
fixture server."""

from __future__ import annotations

import re

import pytest

from check_fastcgi.fpm.status_page import StatusPageError, parse_status
from tests import servers
from tests.conftest import assert_plugin_output, run_check
from tests.pages import HEAD, OWN, page, process, serve


def test_valid_page() -> None:
    status = parse_status(page(OWN, process(2, "Idle", "5000", "/index.php")))
    assert status.pool == "www"
    assert status.figures["accepted_conn"] == 1234
    assert status.figures["listen_queue_len"] == 511
    assert [p.pid for p in status.processes or []] == [1, 2]
    assert status.repairs == []


def test_unescaped_quote_and_backslash_are_repaired() -> None:
    broken = page(OWN, process(2, "Running", "9000000", '/a"b\\c.php?q=\\"x\\"', user='DOM\\user"'))
    status = parse_status(broken)
    slow = (status.processes or [])[1]
    assert slow.request_uri.startswith('/a"b\\c.php?q=')
    assert slow.request_duration == 9.0
    assert status.repairs == ["escaped characters FPM printed raw in request uri/user/script"]


def test_raw_newline_and_tab_in_a_uri() -> None:
    status = parse_status(page(OWN, process(2, "Running", "1", "/x\ny\tz.php")))
    assert (status.processes or [])[1].request_uri == "/x\ny\tz.php"


def test_wrapped_duration_counts_as_zero() -> None:
    status = parse_status(page(OWN, process(2, "Running", "18446744073709551507", "/x.php")))
    assert (status.processes or [])[1].request_duration == 0
    assert "request duration of pid 2 wrapped around; counted as 0" in status.repairs


def test_unknown_state_is_kept() -> None:
    status = parse_status(page(OWN, process(2, "Creating", "0", "-")))
    assert (status.processes or [])[1].state == "Creating"


def test_irreparable_process_list_keeps_the_pool_figures() -> None:
    status = parse_status((HEAD + ', "processes":[{"pid":1,,,"state":}]}').encode())
    assert status.figures["active_processes"] == 2
    assert status.processes is None
    assert "process list unreadable" in status.repairs[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"pool:                 www\nprocess manager:      static\n", "not JSON"),
        (b'{"hello":"world"}', "no 'pool'"),
        (b'{"pool":"www"}', "status page without 'accepted conn'"),
        (
            b'{"pool":"www","accepted conn":"many","idle processes":1,"active processes":1,"total processes":2}',
            "'accepted conn' is 'many'",
        ),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_not_a_status_page(body: bytes, message: str) -> None:
    with pytest.raises(StatusPageError, match=re.escape(message)):
        parse_status(body)


# --- the same pages through the plugin, over FastCGI ------------------------------------


def test_plugin_reports_the_pool_from_a_broken_page(tmp_path) -> None:  # type: ignore[no-untyped-def]
    body = page(
        OWN,
        process(2, "Running", "12500000", '/report".php?id=7'),
        process(3, "Running", "18446744073709551507", "/wrapped.php"),
        process(4, "Creating", "0", "-"),
    )
    with serve(body) as server:
        outcome = run_check(
            "status",
            *server.args,
            "--full",
            "--state-file",
            str(tmp_path / "s"),
            "-c",
            "longest_request=10",
            "-v",
        )
    assert_plugin_output(outcome)
    assert outcome.code == 2
    assert outcome.first_line.startswith(
        "FASTCGI CRITICAL - pool www: longest_request is 12.5s (outside range 0:10); 2 active, 3 idle, 5 total, listen queue 0, "
        'longest request 12.50 s (pid 2 GET /report".php?id=7)'
    )
    assert "note: escaped characters FPM printed raw in request uri/user/script" in outcome.stdout
    assert "note: request duration of pid 3 wrapped around; counted as 0" in outcome.stdout
    assert "process: pid 4 Creating" in outcome.stdout
    assert outcome.perfdata["max_children_reached"] == "1c;;;0"


def test_plugin_salvages_pool_figures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with serve((HEAD + ', "processes":[{"pid":1,,,}]}').encode()) as server:
        outcome = run_check("status", *server.args, "--full", "--state-file", str(tmp_path / "s"), "-v")
    assert outcome.code == 0
    assert outcome.first_line.startswith("FASTCGI OK - pool www: 2 active, 3 idle, 5 total, listen queue 0")
    assert "note: longest_request unknown: no process list" in outcome.stdout
    assert "longest_request" not in outcome.perfdata


def test_plugin_text_page_is_unknown() -> None:
    with serve(b"pool:                 www\n") as server:
        outcome = run_check("status", *server.args)
    assert outcome.code == 3
    assert outcome.first_line == (
        f"FASTCGI UNKNOWN - 127.0.0.1:{server.port} /status is not a PHP-FPM status page (not JSON): 'pool:                 www\\x0a'"
    )


def test_plugin_server_error_is_critical() -> None:
    with serve(b"Server busy", b"Status: 503 Service Unavailable\r\n") as server:
        outcome = run_check("status", *server.args)
    assert outcome.code == 2
    assert (
        outcome.first_line
        == f"FASTCGI CRITICAL - status page at 127.0.0.1:{server.port} /status answered HTTP 503: 'Server busy'"
    )


def test_plugin_asks_for_json_and_full() -> None:
    seen = []

    def recorder(conn, stopping):  # type: ignore[no-untyped-def]
        records = servers.read_request(conn)
        import fcgi_wire  # noqa: PLC0415

        params = b"".join(r.content for r in records if r.type == fcgi_wire.RecordType.PARAMS)
        seen.append(dict(fcgi_wire.decode_pairs(params)))
        conn.sendall(servers.fastcgi_reply(b"\r\n" + page()))

    with servers.ScriptedServer(recorder) as server:
        run_check("status", *server.args, "--full", "--path", "/fpm-status", "--state-file", "/dev/null/x")
    assert seen[0][b"QUERY_STRING"] == b"json&full"
    assert seen[0][b"SCRIPT_NAME"] == b"/fpm-status"
    assert seen[0][b"REQUEST_METHOD"] == b"GET"
    assert seen[0][b"SCRIPT_FILENAME"] == b"/fpm-status"


def test_a_start_time_past_64_bits_counts_as_unknown() -> None:
    status = parse_status(
        page().replace(b'"start time":1700000000', b'"start time":' + str(10**400).encode())
    )
    assert status.start_time == 0
    assert status.figures["accepted_conn"] == 1234
