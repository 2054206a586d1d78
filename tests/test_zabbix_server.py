"""contrib/zabbix in a real Zabbix 6.0 server (Debian 12's packages): the
template imports through the API as shipped, a host linked to it discovers
three real PHP-FPM pools (127.0.0.1, ::1, a Unix socket) and two more
(one without a ping page, one without a status page), values arrive in
history for each, and when FPM stops each pool raises one problem, its
"Service is down", and no trigger turns unknown.

Not part of the default run: it installs a server, a database and a web
front end, and takes minutes. Run it as root with the packages installed:

    CHECK_FASTCGI_ZABBIX_SERVER=1 .venv/bin/python -m pytest -s tests/test_zabbix_server.py

(tools/zabbix-proof does that, and says what is missing).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from tests import zabbix_template as zt
from tests.conftest import CHECK
from tests.fpm import wait_until
from tests.zabbix_server import (
    CONTRIB,
    PROOF_MACROS,
    Api,
    ProofPools,
    ZabbixStack,
    create_host,
    disable_default_host,
    import_template,
    make_workdir,
    missing,
    versions,
    zabbix_port,
)

# A plain run does not collect this module (tests/conftest.py PROOFS):
# CHECK_FASTCGI_ZABBIX_SERVER=1, as tools/zabbix-proof sets it.

#: Generous for a loaded two-core machine: LLD every 20s, items every 10s.
DEADLINE = 300
#: Zabbix's value_type codes.
VALUE_TYPES = {"FLOAT": "0", "CHAR": "1", "LOG": "2", "UNSIGNED": "3", "TEXT": "4"}


def say(text: str) -> None:
    print(f"[zabbix proof] {text}", flush=True)


@dataclass
class Proof:
    stack: ZabbixStack
    pools: ProofPools
    api: Api
    imported: Any
    hosts: Dict[str, Dict[str, str]]
    #: The discovery the agent returns: one LLD row per pool, by {#POOL}.
    rows: Dict[str, Dict[str, str]]
    #: A host whose agent never answers.
    silent: Dict[str, str]
    started: float = field(default_factory=time.monotonic)
    timings: Dict[str, float] = field(default_factory=dict)

    def mark(self, what: str) -> None:
        self.timings[what] = round(time.monotonic() - self.started, 1)
        say(f"{what}: +{self.timings[what]} s")

    def items(self, host: str, **params: Any) -> List[Dict[str, Any]]:
        return self.api.call(
            "item.get",
            {
                "hostids": self.hosts[host]["hostid"],
                "output": ["itemid", "key_", "value_type", "state", "error", "lastvalue", "flags"],
                **params,
            },
        )

    def history(self, item: Dict[str, Any], since: int = 0) -> List[Dict[str, Any]]:
        return self.api.call(
            "history.get",
            {
                "itemids": [item["itemid"]],
                "history": int(item["value_type"]),
                "time_from": since,
                "sortfield": "clock",
                "sortorder": "ASC",
            },
        )

    def triggers(self, host: str, **params: Any) -> List[Dict[str, Any]]:
        return self.api.call(
            "trigger.get",
            {
                "hostids": self.hosts[host]["hostid"],
                "output": ["triggerid", "description", "value", "state", "error"],
                "expandDescription": True,
                **params,
            },
        )

    def problems(self, host: str) -> List[Dict[str, Any]]:
        hostid = self.silent["hostid"] if host == self.silent["host"] else self.hosts[host]["hostid"]
        return self.api.call("problem.get", {"hostids": hostid, "output": ["name", "clock", "objectid"]})


def discovery(pools: ProofPools) -> Dict[str, Dict[str, str]]:
    """What discover tells the agent about the proof's pools."""
    done = subprocess.run(
        [CHECK, "discover", "--format", "json", "--config", str(pools.workdir / "php-fpm.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(done.stdout)
    assert document["problems"] == []
    return {row["{#POOL}"]: row for row in document["data"]}


@pytest.fixture(scope="module")
def proof() -> Iterator[Proof]:
    if os.geteuid() != 0:
        pytest.fail(
            "the Zabbix server proof runs as root (PostgreSQL, the daemons' users, a mount namespace)"
        )
    absent = missing()
    if absent:
        pytest.fail(f"missing Debian packages: {' '.join(absent)}")
    say(" ".join(f"{name} {found}" for name, found in versions().items()))
    workdir = make_workdir()
    pools = ProofPools(workdir / "fpm")
    started = time.monotonic()
    stack: Optional[ZabbixStack] = None
    try:
        pools.start()
        stack = ZabbixStack(workdir, pools.workdir / "php-fpm.conf", log=say)
        stack.start()
        api = stack.api
        disable_default_host(api)
        imported = import_template(api, (CONTRIB / "template_fastcgi.yaml").read_text())
        hosts = {
            "fastcgi-proof": create_host(
                api, "fastcgi-proof", zt.TEMPLATE, stack.ports["agent"], PROOF_MACROS
            ),
            # The single-pool template on the IPv6 pool, by macros.
            "fastcgi-single": create_host(
                api,
                "fastcgi-single",
                zt.SINGLE,
                stack.ports["agent"],
                {**PROOF_MACROS, "{$PHP_FPM.HOST}": "::1", "{$PHP_FPM.PORT}": str(pools.port6)},
            ),
        }
        # An agent that never answers (nothing listens on its port): no data at all.
        silent = create_host(
            api, "fastcgi-silent", zt.SINGLE, zabbix_port(), {**PROOF_MACROS, "{$PHP_FPM.NODATA}": "30s"}
        )
        proof = Proof(stack, pools, api, imported, hosts, discovery(pools), silent, started=started)
        proof.mark("stack up, template imported, hosts created")
        yield proof
        say("timings: " + ", ".join(f"{what} +{seconds} s" for what, seconds in proof.timings.items()))
    finally:
        if stack is not None:
            stack.stop()
        pools.stop()
        if not os.environ.get("CHECK_FASTCGI_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir}")


def expected_keys(proof: Proof) -> Dict[str, set]:
    """Every item key the template gives each pool, expanded as LLD does."""
    out = {}
    for name, row in proof.rows.items():
        reach = zt.DISCOVERED_TCP if row["{#TRANSPORT}"] == "tcp" else zt.DISCOVERED_UNIX
        items = zt.build_items(reach, "expected").items
        if not row["{#STATUS_PATH}"]:
            items = [item for item in items if zt.LIVENESS_ITEMS in str(item["name"])]
        out[name] = {zt.expand(str(item["key"]), row) for item in items}
    return out


def poll(proof: Proof, what: str, found: Callable[[], bool], deadline: float = DEADLINE) -> None:
    try:
        wait_until(found, deadline, what, interval=2)
    except TimeoutError as timeout:
        raise AssertionError(
            f"{timeout}\n{proof.stack.tail('server')}\n{proof.stack.tail('agent')}"
        ) from None


def _key(row: Dict[str, str], base: str) -> str:
    params = zt.DISCOVERED_TCP.params if row["{#TRANSPORT}"] == "tcp" else zt.DISCOVERED_UNIX.params
    return zt.expand(base + params, row)


@pytest.fixture(scope="module")
def discovered(proof: Proof) -> Dict[str, set]:
    """Each pool's item keys, once the server has created them all."""
    expected = expected_keys(proof)
    every = set().union(*expected.values())

    def created() -> bool:
        return every <= {item["key_"] for item in proof.items("fastcgi-proof", filter={"flags": 4})}

    poll(proof, "the discovered items", created)
    proof.mark("LLD created every pool's items")
    return expected


@pytest.fixture(scope="module")
def first_values(proof: Proof, discovered: Dict[str, set]) -> Dict[Tuple[str, str], str]:
    """(pool, figure) -> the first value in history, once every one has one
    (for the liveness state: its states up to the first OK, comma-separated)."""
    by_key = {item["key_"]: item for item in proof.items("fastcgi-proof")}
    single = {item["key_"]: item for item in proof.items("fastcgi-single")}
    wanted = {}
    for name, row in proof.rows.items():
        wanted[(name, "alive.state")] = by_key[_key(row, "php-fpm.alive.state")]
        wanted[(name, "alive.result")] = by_key[_key(row, "php-fpm.alive.result")]
        if row["{#STATUS_PATH}"]:
            for figure in ("total_processes", "active_percent", "accepted_conn.rate"):
                wanted[(name, figure)] = by_key[_key(row, f"php-fpm.{figure}")]
        if row["{#STATUS_PATH}"] and row["{#TRANSPORT}"] == "tcp":
            wanted[(name, "listen_queue_usage")] = by_key[_key(row, "php-fpm.listen_queue_usage")]
    for figure in ("alive.state", "alive.result", "total_processes", "active_percent", "listen_queue_usage"):
        wanted[("single [::1]", figure)] = single[f"php-fpm.{figure}"]
    values: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}

    def done(what: Tuple[str, str]) -> bool:
        # A liveness check on a loaded machine can time out once (-t 2):
        # wait for the pool's first OK, and show what came before it.
        found = values.get(what)
        return bool(found) and (what[1] != "alive.state" or any(v["value"] == "0" for v in found))

    def arrived() -> bool:
        for what, item in wanted.items():
            if not done(what):
                values[what] = proof.history(item)
        return all(done(what) for what in wanted)

    poll(proof, "values in history", arrived)
    proof.mark("values in history for every pool")
    first = {what: found[0]["value"] for what, found in values.items()}
    for (name, figure), found in values.items():
        if figure == "alive.state":
            # The states up to the first OK, e.g. "2,0": what the test asserts on.
            states = [v["value"] for v in found]
            first[(name, figure)] = ",".join(states[: states.index("0") + 1])
            if states[0] != "0":
                say(
                    f"{name}: liveness {states[0]} before its first OK: {values[(name, 'alive.result')][0]['value']}"
                )
    for pool in sorted({name for name, _ in first}):
        figures = ", ".join(f"{figure}={value}" for (name, figure), value in first.items() if name == pool)
        say(f"{pool}: {figures}")
    return first


def test_the_template_imports_as_shipped(proof: Proof) -> None:
    assert proof.imported is True
    templates = proof.api.call("template.get", {"filter": {"host": [zt.TEMPLATE, zt.SINGLE]}})
    assert sorted(t["host"] for t in templates) == sorted([zt.TEMPLATE, zt.SINGLE])
    # Every figure with its value type: 33.3 fits active_percent, counts are unsigned.
    ids = [t["templateid"] for t in templates]
    wanted = {
        figure.key: VALUE_TYPES[figure.value_type] for figure in zt.LIVENESS_FIGURES + zt.STATUS_FIGURES
    }
    checked = 0
    for method in ("itemprototype.get", "item.get"):
        for item in proof.api.call(method, {"templateids": ids, "output": ["key_", "value_type"]}):
            base = item["key_"].split("[")[0]
            expected = wanted.get(base) or (VALUE_TYPES["TEXT"] if base.startswith("fastcgi.") else None)
            if expected:
                assert item["value_type"] == expected, item
                checked += 1
    assert checked > 50
    # The same file again updates in place: the UUIDs hold.
    assert import_template(proof.api, (CONTRIB / "template_fastcgi.yaml").read_text()) is True


def test_the_agent_discovers_every_pool_and_the_server_creates_its_items(
    proof: Proof, discovered: Dict[str, set]
) -> None:
    rows = proof.rows
    assert rows["www"]["{#HOST}"] == "127.0.0.1" and rows["www6"]["{#HOST}"] == "::1"
    assert rows["www-unix"]["{#SOCKET}"] == str(proof.pools.socket_path)
    assert rows["noping"]["{#PING_PATH}"] == "" and rows["nostatus"]["{#STATUS_PATH}"] == ""
    items = {item["key_"] for item in proof.items("fastcgi-proof", filter={"flags": 4})}
    # Nothing more either: the override left out nostatus' status items.
    assert items == set().union(*discovered.values())
    assert len(discovered["nostatus"]) == 4 and len(discovered["www"]) > len(discovered["www-unix"])
    say(", ".join(f"{name}: {len(keys)} items" for name, keys in sorted(discovered.items())))
    rules = proof.api.call(
        "discoveryrule.get",
        {"hostids": proof.hosts["fastcgi-proof"]["hostid"], "output": ["key_", "state", "error"]},
    )
    assert sorted(rule["key_"] for rule in rules) == ["fastcgi.discover[tcp]", "fastcgi.discover[unix]"]
    assert all(rule["state"] == "0" and rule["error"] == "" for rule in rules), rules


def test_values_arrive_in_history_for_every_pool(
    proof: Proof, first_values: Dict[Tuple[str, str], str]
) -> None:
    first = first_values
    for name in ("www", "www6", "www-unix", "nostatus", "noping", "single [::1]"):
        # OK (one timeout on a loaded machine before it is shown, not hidden).
        assert first[(name, "alive.state")].split(",")[-1] == "0", name
    for name in ("www", "www6", "www-unix", "single [::1]"):
        assert first[(name, "total_processes")] == "3"
        assert float(first[(name, "active_percent")]) == pytest.approx(33.3)  # a FLOAT item takes it
    for name in ("www", "www6", "single [::1]"):
        assert float(first[(name, "listen_queue_usage")]) == 0  # the JavaScript step on TCP pools
    assert first[("noping", "total_processes")] == "1"
    assert float(first[("noping", "active_percent")]) == pytest.approx(100)
    for host in proof.hosts:
        assert proof.problems(host) == [], host  # nothing fires on a healthy pool, nodata() neither
        assert proof.items(host, filter={"state": 1}) == [], host  # nothing unsupported
    # The agent ran the plugin as the zabbix user: its state files (rates) are zabbix's.
    state = proof.stack.workdir / "agent" / "state" / "check_fastcgi"
    owners = {path.stat().st_uid for path in state.iterdir()} if state.is_dir() else set()
    assert owners == {pwd.getpwnam("zabbix").pw_uid}, owners


def test_no_data_at_all_is_a_down_pool(proof: Proof, first_values: Dict[Tuple[str, str], str]) -> None:
    """nodata(): no result for {$PHP_FPM.NODATA} (30s on this host) fires the
    down trigger, though no value ever said the pool was down."""
    name = proof.silent["host"]

    def fired() -> bool:
        return [p["name"] for p in proof.problems(name)] == [f"PHP-FPM: {zt.DOWN}"]

    poll(proof, "the down problem of the silent host", fired)
    proof.mark("nodata() fired 'Service is down' on the silent host")
    items = proof.api.call(
        "item.get",
        {
            "hostids": proof.silent["hostid"],
            "output": ["key_", "lastclock"],
            "filter": {"key_": "php-fpm.alive.state"},
        },
    )
    assert [item["lastclock"] for item in items] == ["0"]  # no value ever came


def test_a_down_pool_is_one_problem(proof: Proof, first_values: Dict[Tuple[str, str], str]) -> None:
    stopped = int(time.time())
    proof.pools.stop()
    proof.mark("FPM stopped")
    down = {f"PHP-FPM {row['{#TITLE}']}: {zt.DOWN}" for row in proof.rows.values()}
    single_down = {f"PHP-FPM: {zt.DOWN}"}

    def fired() -> bool:
        return {p["name"] for p in proof.problems("fastcgi-proof")} >= down and {
            p["name"] for p in proof.problems("fastcgi-single")
        } >= single_down

    poll(proof, "a down problem for every pool", fired, deadline=180)
    proof.mark("every pool's 'Service is down' fired")
    for problem in proof.problems("fastcgi-proof") + proof.problems("fastcgi-single"):
        say(f"problem {problem['name']!r} {int(problem['clock']) - stopped} s after FPM stopped")
    # Give the dependent triggers their chance: each status page fails three
    # times in a row, which alone would fire "Status check is failing".
    by_key = {item["key_"]: item for item in proof.items("fastcgi-proof")}
    states = [
        by_key[_key(row, "php-fpm.status.state")] for row in proof.rows.values() if row["{#STATUS_PATH}"]
    ]
    states.append({item["key_"]: item for item in proof.items("fastcgi-single")}["php-fpm.status.state"])

    def failed_thrice() -> bool:
        return all(
            len([value for value in proof.history(item, stopped) if value["value"] != "0"]) >= 3
            for item in states
        )

    poll(proof, "three failed status checks on every pool", failed_thrice, deadline=180)
    proof.mark("three failed status checks on every pool")
    problems = proof.problems("fastcgi-proof")
    assert sorted(p["name"] for p in problems) == sorted(down)  # one per pool, and only that one
    assert [p["name"] for p in proof.problems("fastcgi-single")] == sorted(single_down)
    for host in proof.hosts:
        assert proof.triggers(host, filter={"state": 1}) == [], host  # none unknown
        fired_now = {t["description"] for t in proof.triggers(host, filter={"value": 1})}
        assert fired_now == (down if host == "fastcgi-proof" else single_down)
        assert proof.items(host, filter={"state": 1}) == [], host  # figures keep their last value
    results = {
        item["key_"]: item["lastvalue"]
        for item in proof.items("fastcgi-proof", search={"key_": "alive.result"})
    }
    assert len(results) == len(down) and all("connect to" in text for text in results.values()), results
    say("liveness results: " + "; ".join(sorted(results.values())))
