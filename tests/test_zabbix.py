"""contrib/zabbix with Debian's zabbix_agentd: `zabbix_agentd -t` runs our
UserParameters against a live pool and returns the JSON document; every
key of the template, filled in from discover's LLD data for an IPv4, an
IPv6 and a Unix-socket pool, runs with the agent's default
UnsafeUserParameters=0, and each dependent item finds a value of its type.
tests/test_zabbix_server.py imports the template into a real server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from tests import test_cli
from tests import zabbix_template as zt
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
        params.write_text(
            for_test_pool(
                (CONTRIB / "userparameter_fastcgi.conf").read_text(),
                pool,
                {
                    "discover --format json": f"discover --format json --config {pool.workdir / 'php-fpm.conf'}"
                },
            )
        )
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
    assert match, f"{key}: {done.stdout}"
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


# --- the template ----------------------------------------------------------------


def test_the_template_file_is_what_its_generator_writes() -> None:
    """tests/zabbix_template.py writes the file; regenerate it after a change:
    .venv/bin/python -m tests.zabbix_template > contrib/zabbix/template_fastcgi.yaml"""
    assert (CONTRIB / "template_fastcgi.yaml").read_text() == zt.to_yaml(zt.export())


def _walk(node: object, path: str = "") -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(path, dict) for every mapping in the export."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def test_the_template_is_zabbix_6_0_with_uuid4_everywhere() -> None:
    export = zt.export()["zabbix_export"]
    assert export["version"] == "6.0"  # type: ignore[index]
    assert set(export) == {"version", "groups", "templates"}  # type: ignore[arg-type]
    text = (CONTRIB / "template_fastcgi.yaml").read_text()
    assert "template_groups" not in text  # 6.2's; 6.0 refuses it
    uuids = re.findall(r"^\s*(?:- )?uuid: '([^']*)'$", text, re.M)
    assert len(uuids) == len(set(uuids)) > 80
    for value in uuids:
        assert re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", value), value
    # Every item, prototype, rule and trigger has one (dependencies and
    # master items only point at theirs).
    owned = [
        (path, node)
        for path, node in _walk(export)
        if ("key" in node or "expression" in node)
        and "/dependencies/" not in path
        and "master_item" not in path
    ]
    assert len(owned) > 70
    assert all("uuid" in node for _, node in owned), [path for path, node in owned if "uuid" not in node]


def test_every_item_says_its_value_type() -> None:
    """A prototype without value_type is unsigned: 33.3 would be refused."""
    items = [node for _, node in _walk(zt.export()) if "key" in node and "name" in node and "uuid" in node]
    assert len(items) > 50
    for node in items:
        if str(node["key"]).startswith("fastcgi.discover"):
            continue
        assert node.get("value_type") in ("FLOAT", "UNSIGNED", "TEXT"), node["key"]
        if node.get("units") in ("%", "s") or "rate" in str(node["key"]):
            assert node["value_type"] == "FLOAT", node["key"]
        for step in node.get("preprocessing", []):
            if step["type"] == "JAVASCRIPT":  # the API refuses an error handler there
                assert "error_handler" not in step, node["key"]


def test_a_down_pool_is_one_trigger_and_it_fires_on_missing_data() -> None:
    for _, template in _walk(zt.export()):
        for owner in ("items", "item_prototypes"):
            triggers = [
                t
                for item in template.get(owner, [])
                for t in item.get("triggers", item.get("trigger_prototypes", []))
            ]
            if not triggers:
                continue
            down = [t for t in triggers if str(t["name"]).endswith(zt.DOWN)]
            assert len(down) == 1
            assert "nodata(" in str(down[0]["expression"]) and "{$PHP_FPM.NODATA}" in str(
                down[0]["expression"]
            )
            for trigger in triggers:
                if trigger is not down[0]:
                    depends = [d["name"] for d in trigger["dependencies"]]
                    assert down[0]["name"] in depends, trigger["name"]


def _jsonpath(document: dict, path: str) -> object:
    value: object = document
    for part in path.split(".")[1:]:
        value = value[part]  # type: ignore[index]
    return value


def _lld(conf: Path) -> dict:
    lld = item(conf, "fastcgi.discover[tcp]")
    assert lld["problems"] == [], lld
    return {row["{#POOL}"]: row for row in lld["data"]}


def test_discover_through_the_agent_lists_the_three_pools(agent: tuple) -> None:
    conf, pool = agent
    rows = _lld(conf)
    assert rows["www"]["{#HOST}"] == "127.0.0.1" and rows["www"]["{#PORT}"] == str(pool.port)
    assert rows["www6"]["{#HOST}"] == "::1" and rows["www6"]["{#LISTEN}"] == f"[::1]:{pool.port6}"
    assert rows["www-unix"]["{#TRANSPORT}"] == "unix" and rows["www-unix"]["{#SOCKET}"] == str(
        pool.socket_path
    )


@pytest.mark.parametrize("name", ["www", "www6", "www-unix"])
def test_every_discovered_key_runs_without_unsafe_parameters(agent: tuple, name: str) -> None:
    """The agent's default UnsafeUserParameters=0 (the fixture's conf does not
    set it) takes each key; each figure comes out with its value type."""
    conf, _ = agent
    row = _lld(conf)[name]
    reach = zt.DISCOVERED_TCP if row["{#TRANSPORT}"] == "tcp" else zt.DISCOVERED_UNIX
    items = zt.build_items(reach, "test").items
    documents = {}
    for master in (reach.alive_key, reach.status_key):
        key = zt.expand(master, row)
        assert "{#" not in key
        for parameter in zt.key_parameters(key):
            assert zt.unsafe(parameter) is None, (key, parameter)
        documents[master] = item(conf, key)
        assert documents[master]["state"] == "OK", documents[master]
    checked = 0
    for node in items:
        if node.get("type") != "DEPENDENT":
            continue
        step = node["preprocessing"][0]  # type: ignore[index]
        document = documents[node["master_item"]["key"]]  # type: ignore[index]
        if step["type"] == "JAVASCRIPT":  # the queue usage, as its script computes it
            assert step["parameters"] == [zt.QUEUE_USAGE]
            metrics = document["metrics"]
            length = metrics["listen_queue_len"]["value"]
            assert length > 0  # Linux reports the backlog on TCP
            value = 100 * metrics["listen_queue"]["value"] / length
        else:
            value = _jsonpath(document, step["parameters"][0])
        kind = node["value_type"]
        if kind == "UNSIGNED":
            assert isinstance(value, int) and value >= 0, (node["key"], value)
        elif kind == "FLOAT":
            assert isinstance(value, (int, float)), (node["key"], value)
        else:
            assert isinstance(value, str) and value, (node["key"], value)
        checked += 1
    assert checked == (19 if reach.tcp else 15)


def test_a_pool_without_a_ping_page_is_alive_by_the_handshake(agent: tuple) -> None:
    conf, pool = agent
    tcp = item(conf, f'fastcgi.pool.alive["127.0.0.1","{pool.port}","",""]')
    unix = item(conf, f'fastcgi.pool.alive.socket["{pool.socket_path}","",""]')
    for doc in (tcp, unix):
        assert doc["state"] == "OK" and doc["mode"] == "handshake", doc


def test_the_single_pool_template_takes_an_ipv6_host_by_macro(agent: tuple) -> None:
    conf, pool = agent
    macros = {"{$PHP_FPM.HOST}": "::1", "{$PHP_FPM.PORT}": str(pool.port6)}
    for master in (zt.BY_MACROS.alive_key, zt.BY_MACROS.status_key):
        doc = item(conf, zt.expand(master, macros))
        assert doc["state"] == "OK" and doc["target"] == f"[::1]:{pool.port6}", doc


def test_a_bracketed_listen_is_what_the_agent_refuses(agent: tuple) -> None:
    """Why the keys carry host and port apart: the earlier key by {#LISTEN}
    cannot take an IPv6 pool unless UnsafeUserParameters=1."""
    conf, pool = agent
    done = subprocess.run(
        ["zabbix_agentd", "-c", str(conf), "-t", f'fastcgi.ping.at["[::1]:{pool.port6}","/ping","pong"]'],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "ZBX_NOTSUPPORTED" in done.stdout and "Special characters" in done.stdout, done.stdout
