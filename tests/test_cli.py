"""The command line as the Monitoring Plugins guidelines want it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import assert_plugin_output, run_check


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no mode given: check_fastcgi MODE [options], MODE one of handshake, ping, status"),
        (["bogus"], "unknown mode 'bogus': MODE is one of handshake, ping, status"),
        (["-p", "9000"], "no mode given before -p: check_fastcgi MODE [options], MODE one of handshake"),
        (["handshake", "-p", "x"], "invalid port 'x': a number from 1 to 65535"),
        (["handshake", "-p", "70000"], "invalid port 70000"),
        (["handshake", "-s", "/x.sock", "-H", "h"], "-s/--socket excludes -H/--host and -p/--port"),
        (["handshake", "-H", "/run/x.sock", "-p", "9000"], "is a Unix socket path, which has no port"),
        (["handshake", "-H", "[::1]:9000", "-p", "9001"], "the port is given twice"),
        (["handshake", "-t", "0"], "must be more than 0 seconds"),
        (["handshake", "-t", "soon"], "'soon' is not a number of seconds"),
        (["handshake", "-w", "10:1"], "-w/--warning: '10:1' is not a Nagios range (10, 10:, ~:10"),
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


def help_options(mode: str) -> set:
    text = run_check(mode, "--help").stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text.split("perfdata labels")[0]))


def readme_table_options() -> set:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `-")]
    return {option for row in rows for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", row.split("|")[1])}


def test_readme_option_tables_match_the_help() -> None:
    """The README's option tables and --help cannot drift apart."""
    documented = readme_table_options()
    offered = set().union(*(help_options(mode) for mode in LABELS))
    assert offered - documented == set(), "in --help, missing from README tables"
    assert documented - offered == set(), "in README tables, unknown to --help"


def test_icinga_command_covers_every_option() -> None:
    conf = (Path(__file__).resolve().parent.parent / "contrib" / "icinga2" / "fastcgi.conf").read_text()
    offered = set().union(*(help_options(mode) for mode in LABELS))
    # Not for an engine: help, version, the output format, and -v (set as -v/-vv/-vvv).
    expected = offered - {"--help", "--version", "--format", "--verbose"}
    present = set(re.findall(r'"(--[a-z-]+)" = \{', conf))
    assert expected - present == set()
    assert present - offered == set()


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    import subprocess  # noqa: PLC0415

    from tests.conftest import CHECK  # noqa: PLC0415

    proc = subprocess.Popen(
        [CHECK, "status", "-p", "1", "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the plugin writes a byte
    err = proc.stderr.read()
    proc.wait(timeout=10)
    proc.stderr.close()
    assert b"Traceback" not in err
    assert err == b""


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
def test_arguments_that_cannot_work_are_usage_errors(args: list, message: str) -> None:
    outcome = run_check("ping", *args)
    assert_plugin_output(outcome)
    assert outcome.code == 3
    assert message in outcome.first_line


def test_a_metric_given_twice_is_a_usage_error() -> None:
    outcome = run_check("status", "-c", "active_percent=80", "-c", "active_percent=90")
    assert outcome.code == 3
    assert "-c/--critical active_percent is given twice (80 and 90): keep one" in outcome.first_line


def test_a_forgotten_mode_is_named() -> None:
    outcome = run_check("-p", "9000")
    assert outcome.code == 3
    assert "no mode given before -p" in outcome.first_line and "handshake, ping, status" in outcome.first_line


def test_the_early_mode_list_is_the_modes_list() -> None:
    from check_fastcgi import cli, modes  # noqa: PLC0415

    assert cli.MODE_NAMES == modes.NAMES
