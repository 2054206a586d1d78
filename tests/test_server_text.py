"""What a server sends, however hostile, reaches the output escaped, short
and bounded: control characters and escapes in its strings, millions of
header lines inside the reply cap, a page that would make a repair
quadratic, values that are no numbers."""

from __future__ import annotations

import json
from pathlib import Path

from tests import servers
from tests.conftest import PEAK_RSS_LIMIT_KIB, assert_plugin_output, run_check
from tests.pages import HEAD, page, process, serve, values_server

# --- server text -------------------------------------------------------------------------------


def test_server_strings_are_escaped_and_short(tmp_path: Path) -> None:
    hostile_method = "G\nE\x1b[31mT" + "X" * 3000
    body = page(
        process(7, "Running", "9000000", "/slow.php").replace('"GET"', json.dumps(hostile_method)),
        process(8, "Runn\\u001b[0ming\\nfake", "100", "/x.php"),
    )
    with serve(body) as server:
        outcome = run_check("status", *server.args, "--full", "-v", "--state-file", str(tmp_path / "s"))
    assert_plugin_output(outcome)
    assert "\x1b" not in outcome.stdout
    assert len(outcome.first_line) < 300, outcome.first_line
    assert "(pid 7 G\\x0aE\\x1… /slow.php)" in outcome.first_line
    assert "process: pid 8 Runn\\x1b[0ming\\x0afake " in outcome.stdout
    assert not any(line.startswith("fake") for line in outcome.stdout.splitlines())


def test_a_huge_pool_name_is_cut_not_quoted_whole(tmp_path: Path) -> None:
    body = page().replace(b'"pool":"www"', b'"pool":"' + b"p\\u001b" * 5000 + b'"')
    with serve(body) as server:
        outcome = run_check("status", *server.args, "--pool", "www", "--state-file", str(tmp_path / "s"))
    assert outcome.code == 2
    assert len(outcome.summary) < 200, outcome.summary
    assert "serves pool 'p\\x1bp\\x1b" in outcome.summary
    assert "\x1b" not in outcome.stdout


# --- memory amplification inside the reply cap ---------------------------------------


def test_millions_of_header_lines_cost_no_memory() -> None:
    reply = servers.fastcgi_reply(b"a:\n" * 2_700_000 + b"\npong")
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("ping", *server.args, "-v", "-t", "5")
    assert outcome.code == 2
    assert "protocol error: CGI header block longer than 65536 bytes" in outcome.first_line
    assert outcome.peak_rss_kib < PEAK_RSS_LIMIT_KIB, outcome.peak_rss_kib
    assert len(outcome.stdout) < 2000


def test_too_many_header_lines_in_a_small_block() -> None:
    reply = servers.fastcgi_reply(b"a:\n" * 300 + b"\npong")
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("ping", *server.args)
    assert outcome.code == 2
    assert "protocol error: more than 200 CGI header lines" in outcome.first_line


def test_long_output_is_capped() -> None:
    headers = b"".join(f"X-H{n}: {'v' * 50}\r\n".encode() for n in range(150))
    reply = servers.fastcgi_reply(headers + b"\r\npong")
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("ping", *server.args, "-vvv")
    assert outcome.code == 0
    assert "header: ... 130 more" in outcome.stdout
    assert len(outcome.stdout.splitlines()) < 40


# --- the status page repair is linear -----------------------------------------------------


def test_a_page_of_unterminated_fields_at_the_reply_cap_ends_in_time(tmp_path: Path) -> None:
    """Quadratic before: 298 s at 600 KB, and the safety timer at 8 MiB."""
    body = HEAD.encode() + b"," + b'"request uri":"' * (8_000_000 // 15)
    assert len(body) > 7_900_000
    with serve(body) as server:
        outcome = run_check("status", *server.args, "-t", "20", "--state-file", str(tmp_path / "s"))
    assert_plugin_output(outcome)
    assert "did not finish" not in outcome.stdout
    assert outcome.code in (0, 3), outcome.first_line


# --- hostile values ---------------------------------------------------------------------------


def test_handshake_values_that_are_no_numbers() -> None:
    pairs = [
        (b"FCGI_MAX_CONNS", b"\xb2"),  # latin-1 superscript two: isdigit(), but no int
        (b"FCGI_MAX_REQS", b"9" * 5000),
        (b"time", b"123"),  # must not replace our own time perfdata
        (b"FCGI_MPXS_CONNS", b"0"),
    ]
    with values_server(pairs) as server:
        outcome = run_check("handshake", *server.args)
    assert_plugin_output(outcome)
    assert outcome.code == 0, outcome
    assert set(outcome.perfdata) == {"time", "mpxs_conns"}
    assert outcome.perfdata["time"].endswith("s;;;0")
    assert len(outcome.first_line) < 300


def test_a_figure_past_64_bits_is_no_status_page(tmp_path: Path) -> None:
    body = page().replace(b'"active processes":2', b'"active processes":' + str(10**400).encode())
    assert str(10**400).encode() in body
    with serve(body) as server:
        outcome = run_check("status", *server.args, "--state-file", str(tmp_path / "s"))
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert (
        "'active processes' is 10000000000000000000000…, out of range for an FPM figure" in outcome.first_line
    )
