"""Where FPM lives: two real icinga2 daemons on loopback, a master and an
agent, each with its own configuration, data directories and API listener,
and certificates from `icinga2 pki` (new-ca, new-cert, sign-csr). The master
holds a web host (contrib's php-fpm-agent-host.conf) with contrib's
php-fpm-services.conf and what `discover --format icinga2 --agent` wrote; the
agent runs every check (command_endpoint) against a real pool, and each
result that the master's REST API shows has the agent as its check_source.

The master's PluginContribDir holds no check_fastcgi: a check it ran itself
would fail, so an OK result is one the agent produced.

Two daemons, TLS and a cluster connection take a while on a loaded machine:
a plain run does not collect this module (tests/conftest.py PROOFS); it runs
when CHECK_FASTCGI_ICINGA2_AGENT=1 (`make test-icinga2-agent`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.conftest import BIN, CHECK
from tests.engines import ROOT, for_test_pool
from tests.fpm import FpmPool, free_port, wait_until
from tests.icinga2 import defines, icinga2

CONTRIB = ROOT / "contrib" / "icinga2"
MASTER, AGENT = "master.test", "agent.test"
#: The name contrib's agent example gives its web host, agent and zone.
EXAMPLE_HOST = "web1.example.com"


class Node:
    """One icinga2 daemon: its own directory for configuration, data, logs
    and its API listener's certificates, and a port on 127.0.0.1."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port("127.0.0.1")
        self.certs = workdir / "data" / "certs"
        self.conf = workdir / "icinga2.conf"
        self.process: Optional[subprocess.Popen[bytes]] = None
        workdir.mkdir(parents=True)
        defines(workdir)  # makes the directories the daemon writes

    def defines(self) -> List[str]:
        return [*defines(self.workdir), f"-DConfiguration.ZonesDir={self.workdir / 'zones.d'}"]

    def icinga2(self, *args: str) -> str:
        done = subprocess.run(
            [icinga2(), *args, *self.defines()], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    def start(self) -> None:
        self.icinga2("daemon", "-C", "-c", str(self.conf))
        self.process = subprocess.Popen(
            [icinga2(), "daemon", "-c", str(self.conf), *self.defines()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Rates' state of the checks it runs stays in the test's directory.
            env={**os.environ, "XDG_STATE_HOME": str(self.workdir / "state")},
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        log = self.workdir / "log" / "icinga2.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else "no log"


def certificates(master: Node, agent: Node) -> None:
    """A CA on the master and a certificate for each node, signed by it, where
    each node's API listener looks: DataDir/certs/NodeName.{key,crt}, ca.crt."""
    master.icinga2("pki", "new-ca")
    for node in (master, agent):
        node.certs.mkdir(parents=True)
        key, csr, crt = (node.certs / f"{node.name}.{suffix}" for suffix in ("key", "csr", "crt"))
        node.icinga2("pki", "new-cert", "--cn", node.name, "--key", str(key), "--csr", str(csr))
        master.icinga2("pki", "sign-csr", "--csr", str(csr), "--cert", str(crt))
        shutil.copyfile(master.workdir / "data" / "ca" / "ca.crt", node.certs / "ca.crt")


def constants(node: Node, zone: str, plugins: Path) -> str:
    return (
        'const PluginDir = "/usr/lib/nagios/plugins"\n'
        f'const PluginContribDir = "{plugins}"\n'
        'const ManubulonPluginDir = "/usr/lib/nagios/plugins"\n'
        f'const NodeName = "{node.name}"\nconst ZoneName = "{zone}"\nconst TicketSalt = ""\n'
        f'include <itl>\ninclude <plugins>\ninclude "{CONTRIB / "fastcgi.conf"}"\n'
        'object CheckerComponent "checker" { }\n'
    )


def configure(master: Node, agent: Node, pool: FpmPool, password: str) -> None:
    """The master: its zone, the agent's host, contrib's services and
    discover's. The agent: what `icinga2 node setup --accept-commands`
    gives it (its zone under the master's, the API accepting commands, the
    CheckCommand), check_fastcgi in its PluginContribDir, and no host."""
    host = for_test_pool((CONTRIB / "php-fpm-agent-host.conf").read_text(), pool)
    # The agent's name; and an address on loopback for the host check.
    host = host.replace(EXAMPLE_HOST, AGENT).replace("192.0.2.10", "127.0.0.1")
    (master.workdir / "agent-host.conf").write_text(host)
    fpm_config = str(pool.workdir / "php-fpm.conf")
    discovered = subprocess.run(
        [CHECK, "discover", "--config", fpm_config, "--format", "icinga2", "--agent", AGENT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert discovered.returncode == 0, discovered
    (master.workdir / "discovered.conf").write_text(discovered.stdout)
    nothing = master.workdir / "no-plugins"
    nothing.mkdir()
    master.conf.write_text(
        constants(master, "master", nothing)
        + "object Endpoint NodeName { }\nobject Zone ZoneName { endpoints = [ NodeName ] }\n"
        f'object ApiListener "api" {{ bind_host = "127.0.0.1"\n bind_port = {master.port} }}\n'
        f'object ApiUser "test" {{ password = "{password}"\n permissions = [ "*" ] }}\n'
        f'include "{master.workdir / "agent-host.conf"}"\n'
        f'include "{CONTRIB / "php-fpm-services.conf"}"\n'
        f'include "{master.workdir / "discovered.conf"}"\n'
    )
    agent.conf.write_text(
        constants(agent, AGENT, BIN)
        + f'object Endpoint "{MASTER}" {{ host = "127.0.0.1"\n port = {master.port} }}\n'
        f'object Zone "master" {{ endpoints = [ "{MASTER}" ] }}\n'
        'object Endpoint NodeName { }\nobject Zone ZoneName { endpoints = [ NodeName ]\n parent = "master" }\n'
        f'object ApiListener "api" {{ bind_host = "127.0.0.1"\n bind_port = {agent.port}\n'
        " accept_commands = true\n accept_config = false }\n"
    )


class Api:
    """The master's REST API, over TLS checked against the cluster's CA."""

    def __init__(self, master: Node, password: str) -> None:
        self.port = master.port
        self.context = ssl.create_default_context(cafile=str(master.certs / "ca.crt"))
        self.context.check_hostname = False  # the certificate names master.test, not 127.0.0.1
        token = base64.b64encode(f"test:{password}".encode()).decode()
        self.headers = {"Accept": "application/json", "Authorization": f"Basic {token}"}

    def call(self, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.context)
        try:
            if body is None:
                connection.request("GET", f"/v1{path}", headers=self.headers)
            else:
                headers = {**self.headers, "Content-Type": "application/json"}
                connection.request("POST", f"/v1{path}", body=json.dumps(body), headers=headers)
            reply = connection.getresponse()
            text = reply.read()
        finally:
            connection.close()
        if reply.status != 200:
            raise ConnectionError(f"{path}: HTTP {reply.status}: {text[:500]!r}")
        return json.loads(text)

    def answers(self, path: str) -> Any:
        """The reply, or None while the daemon is not serving yet."""
        try:
            return self.call(path)
        except (OSError, http.client.HTTPException):  # refused, TLS not up yet, 503 while starting
            return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    workdir = tmp_path_factory.mktemp("icinga2-agent")
    password = secrets.token_hex(16)
    master, agent = Node(workdir / "master", MASTER), Node(workdir / "agent", AGENT)
    certificates(master, agent)
    with FpmPool(workdir / "fpm", max_children=3) as pool:
        configure(master, agent, pool, password)
        try:
            agent.start()
            master.start()
            yield master, agent, pool, Api(master, password)
        finally:
            master.stop()
            agent.stop()


def test_the_agent_runs_the_checks_of_its_host(cluster: tuple) -> None:
    master, agent, pool, api = cluster

    def connected() -> bool:
        reply = api.answers(f"/objects/endpoints/{AGENT}")
        return bool(reply and reply["results"][0]["attrs"]["connected"])

    try:
        wait_until(connected, 120, "the agent connected to the master", interval=0.5)
    except TimeoutError:
        pytest.fail(f"master: {master.log_tail()}\nagent: {agent.log_tail()}")
    # Now, rather than at some point of the first check interval.
    api.call(
        "/actions/reschedule-check", {"type": "Service", "filter": f'host.name=="{AGENT}"', "force": True}
    )
    results: Dict[str, Dict[str, Any]] = {}

    def checked_by_the_agent() -> bool:
        reply = api.answers(
            "/objects/services?attrs=last_check_result&attrs=host_name&attrs=command_endpoint"
        )
        for service in (reply or {"results": []})["results"]:
            result = service["attrs"]["last_check_result"]
            if result and result["check_source"] == AGENT:
                results[service["name"]] = {
                    **result,
                    "command_endpoint": service["attrs"]["command_endpoint"],
                }
        return len(results) == 8

    try:
        wait_until(checked_by_the_agent, 120, "every service checked by the agent", interval=0.5)
    except TimeoutError:
        pytest.fail(f"checked: {sorted(results)}\nmaster: {master.log_tail()}\nagent: {agent.log_tail()}")
    discovered = {
        f"{AGENT}!PHP-FPM {name} {mode}"
        for name in ("www", "www6", "www-unix")
        for mode in ("ping", "status")
    }
    assert set(results) == discovered | {f"{AGENT}!php-fpm-ping", f"{AGENT}!php-fpm-status"}
    for name, result in results.items():
        assert result["command_endpoint"] == AGENT, (name, result)
        assert result["state"] == 0 and result["output"].startswith("FASTCGI OK - "), (name, result)
    assert results[f"{AGENT}!PHP-FPM www-unix ping"]["output"].startswith(
        f"FASTCGI OK - {pool.socket_path} /ping answered 200 OK"
    )
    assert results[f"{AGENT}!php-fpm-ping"]["output"].startswith(f"FASTCGI OK - {pool.socket_path} /ping")
    assert results[f"{AGENT}!php-fpm-status"]["output"].startswith("FASTCGI OK - pool www: ")
