"""A misbehaving server, every way we could think of, against every mode.

For each behaviour the plugin must give the state the README promises
for, one line naming the fault, no traceback, return within -t + 0.5 s,
and stay within a bounded peak memory, measured from outside the process.
"""

from __future__ import annotations

import re
import time
from typing import Tuple

import pytest

from tests import servers
from tests.conftest import PEAK_RSS_LIMIT_KIB, assert_plugin_output, run_check
from tests.hostile_servers import BEHAVIOURS, TIMED_OUT_EMPTY, Expect

TIMEOUT = 1.0


MODES = {
    "handshake": ["handshake"],
    "ping": ["ping"],
    "status": ["status", "--state-file", "/dev/null/no-state"],
}


def expectation(expect: Expect, mode: str) -> Tuple[int, str]:
    return expect[mode] if mode in expect else expect["*"]


@pytest.mark.parametrize("family", ["tcp", "unix"])
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize(("name", "handler", "expect"), BEHAVIOURS, ids=[b[0] for b in BEHAVIOURS])
def test_misbehaving_server(
    name: str, handler: servers.Handler, expect: Expect, mode: str, family: str
) -> None:
    code, pattern = expectation(expect, mode)
    with servers.ScriptedServer(handler, family=family) as server:
        outcome = run_check(*MODES[mode], *server.args, "-t", str(TIMEOUT))
    assert_plugin_output(outcome)
    assert outcome.code == code, outcome
    assert len(outcome.stdout.splitlines()) == 1, outcome.stdout
    assert "warning: removed illegal characters" not in outcome.stdout
    assert re.search(pattern, outcome.summary), (pattern, outcome.summary)
    assert outcome.elapsed < TIMEOUT + 0.5, outcome.elapsed
    assert outcome.peak_rss_kib < PEAK_RSS_LIMIT_KIB, outcome.peak_rss_kib


def test_status_page_hostile_json() -> None:
    """Pages built to break a JSON parser: deep nesting, huge numbers."""
    deep = b"[" * 200_000 + b"]" * 200_000
    huge = (
        b'{"pool":"www","accepted conn":'
        + b"9" * 50_000
        + b',"idle processes":1,"active processes":1,"total processes":2}'
    )
    floats = (
        b'{"pool":"www","accepted conn":1e999,"idle processes":1,"active processes":1,"total processes":2}'
    )
    # The huge number is skipped by the salvage pass, so the figure is missing.
    for body, fault in [
        (deep, "not JSON"),
        (huge, "status page without 'accepted conn'"),
        (floats, "'accepted conn' is inf"),
    ]:
        reply = servers.fastcgi_reply(b"Content-Type: application/json\r\n\r\n" + body)
        with servers.ScriptedServer(servers.responds(reply)) as server:
            outcome = run_check(*MODES["status"], *server.args, "-t", "5")
        assert_plugin_output(outcome)
        assert outcome.code == 3, outcome
        assert f"is not a PHP-FPM status page ({fault}" in outcome.first_line, outcome.first_line
        assert outcome.peak_rss_kib < PEAK_RSS_LIMIT_KIB


def test_slowloris_connect_then_silence_is_bounded_by_connect_timeout() -> None:
    """Accepted, then nothing, with a short connect limit: it is the total
    deadline that ends it, and it says it was waiting for a reply."""
    with servers.ScriptedServer(servers.silent) as server:
        started = time.monotonic()
        outcome = run_check("ping", *server.args, "-t", "1", "--connect-timeout", "0.2")
    assert outcome.code == 2
    assert re.search(TIMED_OUT_EMPTY, outcome.summary)
    assert time.monotonic() - started < 1.5


def test_a_full_page_of_10000_workers_fits_the_default_cap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The default cap is enough for --full with 10,000 workers."""
    from tests.pages import page, process  # noqa: PLC0415

    workers = [
        process(
            pid,
            "Running" if pid % 3 == 0 else "Idle",
            str(pid * 1000),
            f"/index.php?user={pid}&token={'t' * 36}",
        )
        for pid in range(1, 10_001)
    ]
    body = page(*workers)
    assert len(body) > 3_000_000
    reply = servers.fastcgi_reply(b"Content-Type: application/json\r\n\r\n" + body)
    with servers.ScriptedServer(servers.responds(reply)) as server:
        outcome = run_check("status", *server.args, "--full", "-t", "5", "--state-file", str(tmp_path / "s"))
    assert outcome.code == 0, outcome
    assert "longest request 10.00 s (pid 9999 GET /index.php?user=9999" in outcome.summary
    assert outcome.peak_rss_kib < PEAK_RSS_LIMIT_KIB
