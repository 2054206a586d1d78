"""contrib/zabbix with Debian's zabbix_agentd: `zabbix_agentd -t` runs our
UserParameters against a live pool and returns the JSON document; the
template outline only asks for values the document has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests import test_cli
from tests.engines import ROOT, for_test_pool
from tests.fpm import FpmPool

CONTRIB = ROOT / "contrib" / "zabbix"
#: Every perfdata label of every mode: what a document can carry.
LABELS = set().union(*test_cli.LABELS.values())


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    workdir = tmp_path_factory.mktemp("zabbix")
    with FpmPool(workdir / "fpm", max_children=3) as pool:
        params = workdir / "userparameter_fastcgi.conf"
        params.write_text(for_test_pool((CONTRIB / "userparameter_fastcgi.conf").read_text(), pool))
        conf = workdir / "zabbix_agentd.conf"
        conf.write_text(
            f"LogType=console\nAllowRoot=1\nTimeout=5\nPidFile={workdir / 'agent.pid'}\n"
            f"LogFile={workdir / 'agent.log'}\nInclude={params}\n"
        )
        yield conf, pool


def item(conf: Path, key: str) -> dict:
    """What the agent returns for a key, as it would send it to the server."""
    done = subprocess.run(
        ["zabbix_agentd", "-c", str(conf), "-t", key], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"\[t\|(.*)\]\s*$", done.stdout, re.S)
    assert match, done.stdout
    return json.loads(match.group(1))


def test_status_item(agent: tuple) -> None:
    conf, pool = agent
    doc = item(conf, f"fastcgi.status[127.0.0.1,{pool.port}]")
    assert doc["state"] == "OK" and doc["exit_code"] == 0
    assert doc["metrics"]["total_processes"]["value"] == 3
    assert doc["metrics"]["longest_request"]["uom"] == "s"  # --full


@pytest.mark.parametrize(
    ("key", "summary"),
    [
        ("fastcgi.ping[127.0.0.1,{port}]", "/ping answered 200 OK"),
        ("fastcgi.ping.socket[{socket}]", "/ping answered 200 OK"),
        ("fastcgi.status.socket[{socket}]", "pool www-unix:"),
        ("fastcgi.handshake[127.0.0.1,{port}]", "answered FCGI_GET_VALUES"),
    ],
)
def test_other_items(agent: tuple, key: str, summary: str) -> None:
    conf, pool = agent
    doc = item(conf, key.format(port=pool.port, socket=pool.socket_path))
    assert doc["state"] == "OK", doc
    assert summary in doc["summary"]


def test_a_down_pool_is_a_value_not_an_unsupported_item(agent: tuple) -> None:
    conf, _ = agent
    doc = item(conf, "fastcgi.ping[127.0.0.1,1]")
    assert doc["exit_code"] == 2 and doc["state"] == "CRITICAL"
    assert doc["summary"] == "connect to 127.0.0.1:1: connection refused"


def test_template_asks_only_for_what_the_documents_carry() -> None:
    template = (CONTRIB / "template_fastcgi.yaml").read_text()
    asked = set(re.findall(r"\$\.metrics\.(\w+)\.value", template))
    assert asked and asked <= LABELS
    keys = set(re.findall(r"key: '(fastcgi\.[\w.]+)\[", template))
    defined = set(
        re.findall(
            r"^UserParameter=(fastcgi\.[\w.]+)\[\*\]",
            (CONTRIB / "userparameter_fastcgi.conf").read_text(),
            re.M,
        )
    )
    assert keys and keys <= defined
