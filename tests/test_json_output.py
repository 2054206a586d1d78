"""--format json: one document with the state, for engines that ignore exit
codes (Zabbix master items with dependent JSONPath items)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import run_check
from tests.fpm import FpmPool
from tests.servers import ScriptedServer, silent


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("json"), max_children=2) as started:
        yield started


def document(*args: str) -> dict:
    outcome = run_check(*args, "--format", "json")
    assert outcome.code == 0, outcome  # the state travels in the document
    assert outcome.stderr == ""
    assert len(outcome.stdout.splitlines()) == 1
    return json.loads(outcome.stdout)


def test_status_document(pool: FpmPool, tmp_path: Path) -> None:
    doc = document(
        "status",
        *pool.targets()["tcp"],
        "--state-file",
        str(tmp_path / "s"),
        "-w",
        "active_percent=80",
        "-c",
        "listen_queue=10",
    )
    assert doc["state"] == "OK" and doc["exit_code"] == 0
    assert doc["mode"] == "status"
    assert doc["target"] == f"127.0.0.1:{pool.port}"
    assert doc["summary"].startswith("pool www: 1 active, 1 idle, 2 total")
    assert doc["metrics"]["active_processes"] == {
        "value": 1,
        "uom": "",
        "state": "OK",
        "warning": None,
        "critical": None,
        "min": 0,
        "max": None,
    }
    assert doc["metrics"]["active_percent"]["warning"] == "80"
    assert doc["metrics"]["active_percent"]["uom"] == "%"
    assert doc["metrics"]["listen_queue"]["critical"] == "10"
    assert doc["metrics"]["accepted_conn"]["uom"] == "c"
    assert "active_processes=1;;;0" in doc["perfdata"]


def test_threshold_breach_is_in_the_document(pool: FpmPool, tmp_path: Path) -> None:
    doc = document(
        "status", *pool.targets()["unix"], "--state-file", str(tmp_path / "s"), "-c", "total_processes=1"
    )
    assert doc["state"] == "CRITICAL" and doc["exit_code"] == 2
    assert doc["metrics"]["total_processes"]["state"] == "CRITICAL"
    assert doc["summary"].startswith("pool www-unix: total_processes is 2 (outside range 0:1)")


@pytest.mark.parametrize("mode", ["handshake", "ping"])
def test_other_modes(pool: FpmPool, mode: str) -> None:
    doc = document(mode, *pool.targets()["ipv6"])
    assert doc["state"] == "OK"
    assert "time" in doc["metrics"] and doc["metrics"]["time"]["uom"] == "s"


def test_failures_and_usage_errors_are_documents_too() -> None:
    refused = document("ping", "-p", "1")
    assert refused == {
        "state": "CRITICAL",
        "exit_code": 2,
        "summary": "connect to 127.0.0.1:1: connection refused",
        "mode": "ping",
        "target": "127.0.0.1:1",
        "metrics": {},
        "details": [],
        "perfdata": "",
    }
    usage = document("status", "-w", "bogus=1")
    assert usage["state"] == "UNKNOWN" and usage["exit_code"] == 3
    assert "unknown metric 'bogus'" in usage["summary"]
    with ScriptedServer(silent) as server:
        timeout = document("handshake", *server.args, "-t", "0.5", "--timeout-state", "warning")
    assert timeout["state"] == "WARNING"
    assert timeout["summary"].startswith("no reply from ")
