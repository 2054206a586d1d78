"""The command line as the Monitoring Plugins guidelines want it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_plugin_output, run_check


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: MODE"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["handshake", "-p", "x"], "invalid port 'x': a number from 1 to 65535"),
        (["handshake", "-p", "70000"], "invalid port 70000"),
        (["handshake", "-s", "/x.sock", "-H", "h"], "-s/--socket excludes -H/--host and -p/--port"),
        (["handshake", "-H", "/run/x.sock", "-p", "9000"], "is a Unix socket path, which has no port"),
        (["handshake", "-H", "[::1]:9000", "-p", "9001"], "the port is given twice"),
        (["handshake", "-t", "0"], "must be more than 0 seconds"),
        (["handshake", "-t", "soon"], "'soon' is not a number of seconds"),
        (["handshake", "-w", "10:1"], "argument -w/--warning: invalid Range value"),
        (["handshake", "--timeout-state", "ok"], "argument --timeout-state: invalid choice"),
        (["handshake", "--max-reply-bytes", "0"], "must be at least 1"),
        (["handshake", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_argument_errors_exit_3_on_stdout(args: list, message: str) -> None:
    outcome = run_check(*args)
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert outcome.first_line.startswith("FASTCGI UNKNOWN - check_fastcgi")
    assert message in outcome.first_line


LABELS = {
    "handshake": ["time", "max_conns", "max_reqs", "mpxs_conns"],
    "ping": ["time", "size"],
    "status": [
        "time",
        "active_processes",
        "idle_processes",
        "total_processes",
        "active_percent",
        "listen_queue",
        "max_listen_queue",
        "listen_queue_len",
        "max_active_processes",
        "accepted_conn",
        "max_children_reached",
        "slow_requests",
        "accepted_conn_rate",
        "max_children_reached_rate",
        "slow_requests_rate",
        "start_since",
        "longest_request",
        "memory_peak",
    ],
}


@pytest.mark.parametrize("args", [["-h"], ["--help"]])
def test_top_level_help_lists_every_mode_and_label(args: list) -> None:
    outcome = run_check(*args)
    assert outcome.code == 3
    assert outcome.stderr == ""
    assert outcome.stdout.startswith("usage: check_fastcgi")
    for mode, labels in LABELS.items():
        section = outcome.stdout.split(f"perfdata labels of {mode}:\n", 1)[1].split("\n\n")[0]
        assert [line.split()[0] for line in section.splitlines()] == labels


@pytest.mark.parametrize("mode", sorted(LABELS))
def test_mode_help_lists_its_labels(mode: str) -> None:
    outcome = run_check(mode, "--help")
    assert outcome.code == 3
    assert outcome.stdout.startswith(f"usage: check_fastcgi {mode}")
    for label in LABELS[mode]:
        assert f"\n  {label} " in outcome.stdout


def test_readme_documents_every_label() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for labels in LABELS.values():
        for label in labels:
            assert f"`{label}`" in readme, label


@pytest.mark.parametrize("args", [["-V"], ["--version"], ["handshake", "-V"]])
def test_version_on_stdout_exit_3(args: list) -> None:
    outcome = run_check(*args)
    assert outcome.code == 3
    assert outcome.stdout.startswith("check_fastcgi 0.")
    assert outcome.stderr == ""


def test_fractional_timeout_is_accepted() -> None:
    outcome = run_check("handshake", "-p", "1", "-t", "2.5")
    assert outcome.code == 2  # refused, not a usage error
