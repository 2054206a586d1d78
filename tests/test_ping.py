"""ping against a real php-fpm: FPM's own ping path and a PHP health script."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, List

import pytest

from tests import servers
from tests.conftest import assert_plugin_output, run_check
from tests.fpm import FpmPool, SlowRequest


def test_ping_ok(fpm_target: List[str]) -> None:
    outcome = run_check("ping", *fpm_target)
    assert_plugin_output(outcome)
    assert outcome.code == 0
    assert re.match(r"FASTCGI OK - \S+ /ping answered 200 OK in \d+\.\d ms: 'pong' \| ", outcome.first_line)
    assert outcome.perfdata["size"] == "4B;;;0"
    assert re.fullmatch(r"\d+\.\d+s;;;0", outcome.perfdata["time"])


def test_ping_path_not_configured(fpm: FpmPool) -> None:
    outcome = run_check("ping", *fpm.targets()["tcp"], "--path", "/no-ping-here")
    assert outcome.code == 2
    assert outcome.summary == (
        f"FASTCGI CRITICAL - 127.0.0.1:{fpm.port} /no-ping-here: HTTP 404 Not Found, expected 200 "
        "(FPM: Primary script unknown; check --path and --script-filename): got 'File not found.\\x0a'"
    )


def test_default_ping_path_missing_names_the_setting() -> None:
    page = servers.fastcgi_reply(b"Status: 404 Not Found\r\n\r\nFile not found.\n", b"Primary script unknown")
    with servers.ScriptedServer(servers.responds(page)) as server:
        outcome = run_check("ping", *server.args)
    assert outcome.code == 2
    assert (
        "HTTP 404 Not Found, expected 200 (is ping.path = /ping set in the pool? else give its path with --path)"
        in outcome.first_line
    )


def test_expect_mismatch(fpm: FpmPool) -> None:
    outcome = run_check("ping", *fpm.targets()["unix"], "-e", "PONG")
    assert outcome.code == 2
    assert (
        outcome.summary
        == f"FASTCGI CRITICAL - {fpm.socket_path} /ping: body does not contain 'PONG': got 'pong'"
    )


def test_regex_match_and_mismatch(fpm: FpmPool) -> None:
    target = fpm.targets()["tcp"]
    assert run_check("ping", *target, "-r", "^p.ng$").code == 0
    outcome = run_check("ping", *target, "-r", "^ping$")
    assert outcome.code == 2
    assert "body does not match /^ping$/: got 'pong'" in outcome.first_line


@pytest.mark.parametrize(
    ("accepted", "code"),
    [("200", 2), ("404", 0), ("400-499", 0), ("200-299,301", 2), ("200,404", 0), ("405-499", 2)],
)
def test_expect_status_lists(fpm: FpmPool, accepted: str, code: int) -> None:
    outcome = run_check("ping", *fpm.targets()["tcp"], "--path", "/missing", "--expect-status", accepted)
    assert outcome.code == code, outcome
    if code:
        assert f"HTTP 404 Not Found, expected {accepted}" in outcome.first_line


def health(fpm: FpmPool, *args: str) -> List[str]:
    return [
        "ping",
        *fpm.targets()["tcp"],
        "--path",
        "/health.php",
        "--script-filename",
        fpm.script("health.php"),
        *args,
    ]


def body_lines(outcome_stdout: str) -> dict:
    """health.php's key=value lines, read from -v output's body line."""
    body = next(line for line in outcome_stdout.splitlines() if line.startswith("body: "))
    return dict(item.split("=", 1) for item in body[len("body: '") : -1].split("\\x0a") if "=" in item)


def test_health_script_with_query_method_body_and_params(fpm: FpmPool) -> None:
    outcome = run_check(
        *health(
            fpm,
            "--query",
            "a=1&b=2",
            "--method",
            "post",
            "--body",
            "x=42",
            "--param",
            "HTTP_X_PROBE=yes",
            "-e",
            "healthy",
            "-v",
        )
    )
    assert_plugin_output(outcome)
    assert outcome.code == 0, outcome
    echoed = body_lines(outcome.stdout)
    assert echoed["method"] == "POST"
    assert echoed["query"] == "a=1&b=2"
    assert echoed["body"] == "x=42"
    assert echoed["content_type"] == "application/x-www-form-urlencoded"
    assert echoed["probe"] == "yes"
    assert "app stderr: " in outcome.stdout and "health.php says hello on stderr" in outcome.stdout


def test_param_overrides_a_default(fpm: FpmPool) -> None:
    outcome = run_check(*health(fpm, "--body", "{}", "--param", "CONTENT_TYPE=application/json", "-v"))
    assert body_lines(outcome.stdout)["content_type"] == "application/json"


def test_the_plugin_environment_is_never_sent(fpm: FpmPool) -> None:
    env = {"PATH": os.environ["PATH"], "CHECK_FASTCGI_LEAK": "secret", "HOME": "/nonexistent"}
    outcome = run_check(*health(fpm, "-v"), env=env)
    echoed = body_lines(outcome.stdout)
    assert echoed["leak"] == "-"
    assert "HOME" not in echoed["params"].split(",")


def test_health_script_status_and_stderr_do_not_change_state(fpm: FpmPool) -> None:
    ok = run_check(*health(fpm, "-e", "healthy"))
    assert ok.code == 0  # app stderr alone never changes the state
    failing = run_check(*health(fpm, "--query", "status=503"))
    assert failing.code == 2
    assert "HTTP 503 Service Unavailable, expected 200: got 'method=GET" in failing.first_line


def test_response_time_thresholds(fpm: FpmPool) -> None:
    outcome = run_check("ping", *fpm.targets()["tcp"], "-w", "0.0000001")
    assert outcome.code == 1
    assert re.search(r"/ping: response time [\d.e-]+s \(outside range 0:1e-07\)", outcome.first_line)


def test_overloaded_refusal_is_critical_by_name() -> None:
    with servers.ScriptedServer(servers.responds(servers.fastcgi_reply(b"", protocol_status=2))) as server:
        outcome = run_check("ping", *server.args)
    assert outcome.code == 2
    assert (
        outcome.first_line
        == f"FASTCGI CRITICAL - 127.0.0.1:{server.port} refused the request: FCGI_OVERLOADED"
    )


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("one-worker"), max_children=1) as pool:
        yield pool


def test_all_workers_busy_times_out_with_the_reason(one_worker: FpmPool) -> None:
    with SlowRequest(one_worker, ms=4000):
        outcome = run_check("ping", *one_worker.targets()["tcp"], "-t", "1")
    assert_plugin_output(outcome)
    assert outcome.code == 2
    assert outcome.first_line == (
        f"FASTCGI CRITICAL - no reply from 127.0.0.1:{one_worker.port} within 1s (-t): "
        "connection accepted, but nothing answered (every worker busy, or not a FastCGI server?)"
    )
    assert outcome.elapsed < 1.5


def test_a_worker_freed_in_time_answers(one_worker: FpmPool, tmp_path: Path) -> None:
    with SlowRequest(one_worker, ms=300):
        outcome = run_check("ping", *one_worker.targets()["tcp"], "-t", "5")
    assert outcome.code == 0


def test_default_ping_path_is_fpms_own(fpm: FpmPool) -> None:
    outcome = run_check("ping", *fpm.targets()["tcp"])
    assert outcome.code == 0
    assert " /ping answered 200 OK" in outcome.first_line


def test_a_path_without_its_slash_gets_a_hint_about_the_slash(fpm: FpmPool) -> None:
    outcome = run_check("ping", *fpm.targets()["tcp"], "--path", "ping")
    assert outcome.code == 2
    assert "(--path ping has no leading /: FPM matches ping.path against /ping)" in outcome.first_line


def test_the_404_hint_names_path(fpm: FpmPool) -> None:
    outcome = run_check("ping", *fpm.targets()["tcp"], "--path", "/nope", "--script-filename", "/nope")
    assert outcome.code == 2
    assert "check --path" in outcome.first_line
