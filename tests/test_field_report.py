"""The field report (a fresh machine, an operator at 3 a.m., a hostile local
user): one regression test per item, named after it. The state file items
(1-3) have their own file, tests/test_statefile.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from fcgi_wire import RecordType, encode_pairs, encode_record
from tests import servers
from tests.conftest import CHECK, assert_plugin_output, run_check
from tests.fpm import FpmPool, wait_until
from tests.test_hostile import PEAK_RSS_LIMIT_KIB
from tests.test_status_page import HEAD, page, process

ROOT = Path(__file__).resolve().parent.parent
JSON_HEADER = b"Content-Type: application/json\r\n\r\n"


def serving_page(body: bytes) -> servers.ScriptedServer:
    return servers.ScriptedServer(servers.responds(servers.fastcgi_reply(JSON_HEADER + body)))


def values_server(pairs: list) -> servers.ScriptedServer:
    reply = encode_record(RecordType.GET_VALUES_RESULT, 0, encode_pairs(pairs))

    def handler(conn, stopping):  # type: ignore[no-untyped-def]
        servers.read_request(conn)
        conn.sendall(reply)
        stopping.wait()

    return servers.ScriptedServer(handler)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("field"), max_children=2, pool_name="field") as started:
        yield started


# --- 4. server text reaches the output raw ----------------------------------------------


def test_item4_server_strings_are_escaped_and_short(tmp_path: Path) -> None:
    hostile_method = "G\nE\x1b[31mT" + "X" * 3000
    body = page(
        process(7, "Running", "9000000", "/slow.php").replace('"GET"', json.dumps(hostile_method)),
        process(8, "Runn\\u001b[0ming\\nfake", "100", "/x.php"),
    )
    with serving_page(body) as server:
        outcome = run_check("status", *server.args, "--full", "-v", "--state-file", str(tmp_path / "s"))
    assert_plugin_output(outcome)
    assert "\x1b" not in outcome.stdout
    assert len(outcome.first_line) < 300, outcome.first_line
    assert "(pid 7 G\\x0aE\\x1… /slow.php)" in outcome.first_line
    assert "process: pid 8 Runn\\x1b[0ming\\x0afake " in outcome.stdout
    assert not any(line.startswith("fake") for line in outcome.stdout.splitlines())


def test_item4_a_huge_pool_name_is_cut_not_quoted_whole(tmp_path: Path) -> None:
    body = page().replace(b'"pool":"www"', b'"pool":"' + b"p\\u001b" * 5000 + b'"')
    with serving_page(body) as server:
        outcome = run_check("status", *server.args, "--pool", "www", "--state-file", str(tmp_path / "s"))
    assert outcome.code == 2
    assert len(outcome.summary) < 200, outcome.summary
    assert "serves pool 'p\\x1bp\\x1b" in outcome.summary
    assert "\x1b" not in outcome.stdout


# --- 5. memory amplification inside the reply cap ---------------------------------------


def test_item5_millions_of_header_lines_cost_no_memory() -> None:
    reply = servers.fastcgi_reply(b"a:\n" * 2_700_000 + b"\npong")
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("ping", *server.args, "-v", "-t", "5")
    assert outcome.code == 2
    assert "protocol error: CGI header block longer than 65536 bytes" in outcome.first_line
    assert outcome.peak_rss_kib < PEAK_RSS_LIMIT_KIB, outcome.peak_rss_kib
    assert len(outcome.stdout) < 2000


def test_item5_too_many_header_lines_in_a_small_block() -> None:
    reply = servers.fastcgi_reply(b"a:\n" * 300 + b"\npong")
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("ping", *server.args)
    assert outcome.code == 2
    assert "protocol error: more than 200 CGI header lines" in outcome.first_line


def test_item5_long_output_is_capped() -> None:
    headers = b"".join(f"X-H{n}: {'v' * 50}\r\n".encode() for n in range(150))
    reply = servers.fastcgi_reply(headers + b"\r\npong")
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("ping", *server.args, "-vvv")
    assert outcome.code == 0
    assert "header: ... 130 more" in outcome.stdout
    assert len(outcome.stdout.splitlines()) < 40


# --- 6. the status page repair is linear -----------------------------------------------------


def test_item6_a_page_of_unterminated_fields_at_the_reply_cap_ends_in_time(tmp_path: Path) -> None:
    """Quadratic before: 298 s at 600 KB, and the safety timer at 8 MiB."""
    body = HEAD.encode() + b"," + b'"request uri":"' * (8_000_000 // 15)
    assert len(body) > 7_900_000
    with serving_page(body) as server:
        outcome = run_check("status", *server.args, "-t", "20", "--state-file", str(tmp_path / "s"))
    assert_plugin_output(outcome)
    assert "did not finish" not in outcome.stdout
    assert outcome.code in (0, 3), outcome.first_line


# --- 7. hostile values ---------------------------------------------------------------------------


def test_item7_handshake_values_that_are_no_numbers() -> None:
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


def test_item7_a_figure_past_64_bits_is_no_status_page(tmp_path: Path) -> None:
    body = page().replace(b'"active processes":2', b'"active processes":' + str(10**400).encode())
    assert str(10**400).encode() in body
    with serving_page(body) as server:
        outcome = run_check("status", *server.args, "--state-file", str(tmp_path / "s"))
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert (
        "'active processes' is 10000000000000000000000…, out of range for an FPM figure" in outcome.first_line
    )


# --- 10. correct diagnosis: not a FastCGI server, and what -v shows --------------------------------


def test_item10_a_silent_server_may_be_busy_or_not_fastcgi_and_v_says_what_went() -> None:
    with servers.ScriptedServer(servers.silent) as server:
        outcome = run_check("ping", *server.args, "-t", "1", "-v")
    assert outcome.code == 2
    assert "(every worker busy, or not a FastCGI server?)" in outcome.first_line
    lines = outcome.stdout.splitlines()
    assert any(line.startswith("sent: a FastCGI request of ") for line in lines), lines
    assert "received: nothing" in lines


def test_item10_v_shows_the_first_bytes_of_a_banner() -> None:
    with servers.ScriptedServer(servers.answers_and_waits(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")) as server:
        outcome = run_check("ping", *server.args, "-v")
    assert outcome.code == 2
    assert outcome.first_line.startswith("FASTCGI CRITICAL - protocol error: bad FastCGI version 83")
    assert "received: 30 bytes, starting 'SSH-2.0-OpenSSH_9.2p1 Debian\\x0d\\x0a'" in outcome.stdout


# --- 11. a socket path that is no socket; arguments the kernel or resolver would refuse --------------


@pytest.mark.parametrize("kind", ["a regular file", "a directory"])
def test_item11_a_path_that_is_not_a_socket_says_so(tmp_path: Path, kind: str) -> None:
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "/run/" + "x" * 120 + ".sock"], "Unix socket path is 130 bytes long; the kernel allows 107"),
        (["-H", "/" + "y" * 110], "Unix socket path is 111 bytes long"),
        (["-H", "a..b"], "invalid host name 'a..b'"),
        (["-H", "x" * 64 + ".example"], "each dot-separated part must be 1 to 63"),
        (["--host=-bad.example"], "invalid host name '-bad.example'"),
    ],
)
def test_item11_arguments_that_cannot_work_are_usage_errors(args: list, message: str) -> None:
    outcome = run_check("ping", *args)
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert message in outcome.first_line


# --- 12. the ping path --------------------------------------------------------------------------------


def test_item12_default_ping_path_is_fpms_own(pool: FpmPool) -> None:
    outcome = run_check("ping", *pool.targets()["tcp"])
    assert outcome.code == 0
    assert " /ping answered 200 OK" in outcome.first_line


def test_item12_a_path_without_its_slash_gets_a_hint_about_the_slash(pool: FpmPool) -> None:
    outcome = run_check("ping", *pool.targets()["tcp"], "--path", "ping")
    assert outcome.code == 2
    assert "(--path ping has no leading /: FPM matches ping.path against /ping)" in outcome.first_line


def test_item12_the_404_hint_names_path(pool: FpmPool) -> None:
    outcome = run_check("ping", *pool.targets()["tcp"], "--path", "/nope", "--script-filename", "/nope")
    assert outcome.code == 2
    assert "check --path" in outcome.first_line


# --- 13. silent drops and unhelpful errors ------------------------------------------------------------


def test_item13_a_metric_given_twice_is_a_usage_error() -> None:
    outcome = run_check("status", "-c", "active_percent=80", "-c", "active_percent=90")
    assert outcome.code == 3
    assert "-c active_percent is given twice (80 and 90): keep one" in outcome.first_line


def test_item13_a_forgotten_mode_is_named() -> None:
    outcome = run_check("-p", "9000")
    assert outcome.code == 3
    assert "no mode given before -p" in outcome.first_line and "handshake, ping, status" in outcome.first_line


# --- 14. exit codes outside 0-3 --------------------------------------------------------------------------


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for the signal (/proc SigCgt)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_item14_a_signal_as_soon_as_it_is_caught_gives_one_unknown_line(signum: int) -> None:
    """The handlers come before nagiosplugin and fcgi_wire load: a signal in
    those milliseconds is an UNKNOWN line, not 128+N and silence."""
    with servers.ScriptedServer(servers.silent) as server:
        proc = subprocess.Popen(
            [CHECK, "ping", *server.args, "-t", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: proc.poll() is not None or catches(proc.pid, signum), 10, "signal handler", 0.0005)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    name = signal.Signals(signum).name
    assert (proc.returncode, out, err) == (3, f"FASTCGI UNKNOWN - interrupted by {name}\n", "")


def test_item14_a_closed_or_full_stdout_is_exit_3_without_a_traceback() -> None:
    closed = subprocess.run(
        ["/bin/sh", "-c", f"exec {CHECK} ping -p 1 >&-"], capture_output=True, text=True, timeout=30
    )
    assert (closed.returncode, closed.stderr) == (3, "")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [CHECK, "ping", "-p", "1"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=30
        )
    assert (done.returncode, done.stderr) == (3, "")


SLOW_PRINT = """
import sys, time
import nagiosplugin
from check_fastcgi import runner
from check_fastcgi.output import Output
from check_fastcgi.target import Limits, Target
import fcgi_wire

class Probe(nagiosplugin.Resource):
    def probe(self):
        return [nagiosplugin.Metric("x", 1, context="default")]

class SlowSummary(nagiosplugin.Summary):
    def verbose(self, results):
        # Rendering long output takes past the deadline and the safety margin.
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            pass
        return ["detail"]

limits = Limits(timeout=0.2, deadline=time.monotonic() + 0.2)
target = Target(fcgi_wire.TcpAddress("127.0.0.1", 9), limits)
runner.run(nagiosplugin.Check(Probe(), SlowSummary(), name="fastcgi"), Output(verbosity=1), target, "ping")
"""


def test_item14_the_safety_timer_is_off_while_the_output_is_printed() -> None:
    done = subprocess.run([sys.executable, "-c", SLOW_PRINT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done
    assert done.stdout.startswith("FASTCGI OK")
    assert done.stdout.count("FASTCGI") == 1, done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as a uid without a passwd entry")
def test_item14_a_uid_without_passwd_entry_or_home_still_checks(pool: FpmPool) -> None:
    """A container's arbitrary uid: no passwd entry, no HOME (KeyError before).
    It runs the zipapp with Debian's python3 from a directory it can read."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    uid = 54321
    state_dir = Path(f"/var/tmp/check_fastcgi-{uid}")
    python = shutil.which("python3", path="/usr/bin")
    assert python, "Debian's python3 is part of the base system"
    readable = Path(tempfile.mkdtemp(prefix="uid-"))
    readable.chmod(0o755)
    pyz = readable / "check_fastcgi.pyz"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(pyz)], check=True, capture_output=True
    )
    pyz.chmod(0o755)
    done = subprocess.run(
        [python, "-I", str(pyz), "status", *pool.targets()["tcp"], "-v"],
        env={"PATH": "/usr/bin:/bin"},
        preexec_fn=lambda: (os.setgid(uid), os.setuid(uid)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        assert done.returncode == 0, done
        assert "internal error" not in done.stdout
        assert "note: no rates yet: first run" in done.stdout
        assert state_dir.stat().st_uid == uid
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(readable, ignore_errors=True)


def test_item13_the_early_mode_list_is_the_modes_list() -> None:
    from check_fastcgi import cli, modes  # noqa: PLC0415

    assert cli.MODE_NAMES == modes.NAMES


# --- 8. the zipapp; 9. README warnings --------------------------------------------------------------


def test_item9_readme_warns_about_param() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "can run any PHP file the pool can read" in readme
    assert "PHP_ADMIN_VALUE" in readme


def test_item8_readme_recommends_isolated_mode_for_dash_m() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 -I -m check_fastcgi" in readme
    assert "python -m check_fastcgi" not in readme


# --- 17. the operator's path first --------------------------------------------------------------------


def test_item17_the_readme_starts_with_install_and_keeps_deep_reference_in_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Install", "## Try it, test it"], headings
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "install -m 0755 dist/check_fastcgi.pyz /usr/lib/nagios/plugins/check_fastcgi" in install
    assert "ln -s /opt/check_fastcgi/bin/check_fastcgi /usr/lib/nagios/plugins/check_fastcgi" in install
    for doc in ("docs/interoperability.md", "docs/fcgi_wire.md"):
        assert (ROOT / doc).exists() and f"]({doc})" in readme


def test_the_fast_exit_prints_and_exits_exactly_as_the_full_one(pool: FpmPool) -> None:
    """Outside dev mode a check ends with os._exit once its output is
    flushed (the interpreter's teardown was half of a check's overhead):
    the same bytes and exit codes as the full exit the tests use."""
    import os as _os  # noqa: PLC0415

    base = {
        "PATH": _os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "XDG_STATE_HOME": "/nonexistent",
    }
    cases = [
        (["ping", *pool.targets()["tcp"]], 0),
        (["ping", "-p", "1"], 2),
        (["ping", "-p", "1", "--format", "json"], 0),
        (["status", "-w", "bogus=1"], 3),
        (["--version"], 3),
    ]
    for args, code in cases:
        fast = subprocess.run([CHECK, *args], capture_output=True, text=True, env=base, timeout=30)
        full = subprocess.run(
            [CHECK, *args], capture_output=True, text=True, env={**base, "PYTHONDEVMODE": "1"}, timeout=30
        )
        assert (fast.returncode, fast.stderr) == (full.returncode, full.stderr) == (code, ""), (
            args,
            fast,
            full,
        )
        strip = re.compile(r"\d+\.\d+ ms|time=[\d.e-]+s")  # the timings differ, nothing else may
        assert strip.sub("", fast.stdout) == strip.sub("", full.stdout) != "", args
