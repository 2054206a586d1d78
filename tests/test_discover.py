"""check_fastcgi discover against real php-fpm masters started from configs
laid out as Debian (two versions), the official PHP images and RHEL do;
every generated definition is validated by its engine and run as generated."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.conftest import BIN, CHECK, run_check
from tests.engines import INSTALLED_PLUGIN, ROOT
from tests.fpm import FpmPool, SlowRequest, free_port
from tests.icinga2 import validate
from tests.layouts import Layouts
from tests.nagios import nagios_cfg


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layouts]:
    layouts = Layouts(tmp_path_factory.mktemp("host")).write().start()
    try:
        yield layouts
    finally:
        layouts.stop()


def discover(host: Layouts, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHECK, "discover", "--root", str(host.root), *args], capture_output=True, text=True, timeout=60
    )


def test_the_table_lists_every_pool_of_every_layout(host: Layouts) -> None:
    done = discover(host)
    assert done.returncode == 0 and done.stderr == ""
    rows = [
        line.split() for line in done.stdout.splitlines()[1:] if not line.startswith(("hint:", "problem:"))
    ]
    listens = {row[2] for row in rows}
    assert f"127.0.0.1:{host.ports['api']}" in listens
    assert f"[::1]:{host.ports['legacy6']}" in listens
    assert f"127.0.0.1:{host.ports['image']}" in listens  # zz-docker.conf's bare port, merged into [www]
    assert f"{host.sockets}/php8.2-www.sock" in listens  # $pool expanded
    assert f"{host.sockets}/rhel-www.sock" in listens
    assert len(rows) == 5
    assert "hint: set pm.status_path = /status in [api] to enable status" in done.stdout
    assert "problem:" not in done.stdout


def test_zabbix_discovery_json(host: Layouts) -> None:
    document = json.loads(discover(host, "--format", "json").stdout)
    pools = {(entry["{#TITLE}"]): entry for entry in document["data"]}
    assert pools["8.2 www"]["{#TRANSPORT}"] == "unix" and pools["8.2 www"]["{#STATUS_PATH}"] == "/status"
    assert pools["8.2 api"]["{#HOST}"] == "127.0.0.1" and pools["8.2 api"]["{#STATUS_PATH}"] == ""
    assert pools["8.1 legacy"]["{#LISTEN}"] == f"[::1]:{host.ports['legacy6']}"
    assert pools["8.2 www"]["{#MAX_CHILDREN}"] == "2"
    assert document["problems"] == []


def monit_commands(host: Layouts) -> List[List[str]]:
    text = discover(host, "--format", "monit", "--plugin", CHECK).stdout
    return [shlex.split(command) for command in re.findall(r'with path "(.*)"', text)]


def test_every_generated_check_runs_ok_against_the_live_pools(host: Layouts) -> None:
    commands = monit_commands(host)
    assert len(commands) == 9  # a liveness check per pool (5), a status check per status page (4)
    for command in commands:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=30, env={"XDG_STATE_HOME": str(host.run)}
        )
        assert done.returncode == 0, (command, done.stdout)
        assert done.stdout.startswith("FASTCGI OK - ")


def test_monit_accepts_the_blocks(host: Layouts, tmp_path: Path) -> None:
    control = tmp_path / "monitrc"
    control.write_text(
        f"set daemon 60\nset pidfile {tmp_path / 'monit.pid'}\nset idfile {tmp_path / 'monit.id'}\n"
        f"set statefile {tmp_path / 'monit.state'}\n"
        + discover(host, "--format", "monit", "--plugin", CHECK).stdout
    )
    control.chmod(0o600)
    done = subprocess.run(["monit", "-t", "-c", str(control)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Control file syntax OK" in done.stdout + done.stderr


def test_nagios_verifies_and_the_commands_run(host: Layouts, tmp_path: Path) -> None:
    services = tmp_path / "services.cfg"
    services.write_text(discover(host, "--format", "nagios", "--host-name", "web1").stdout)
    done = subprocess.run(
        ["nagios4", "-v", str(nagios_cfg(tmp_path, services))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Checked 9 services." in done.stdout
    templates = dict(
        re.findall(
            r"command_name\s+(\S+)\s+command_line\s+(.*)",
            (ROOT / "contrib/nagios/fastcgi-commands.cfg").read_text(),
        )
    )
    for name, args in re.findall(r"check_command\s+(\w+)!(.*)", services.read_text()):
        line = templates[name].replace("$USER1$", str(BIN))
        for number, arg in enumerate(args.split("!"), 1):
            line = line.replace(f"${f'ARG{number}'}$", arg.replace("$$", "$"))
        line = re.sub(r"\$ARG\d\$", "", line)
        ran = subprocess.run(
            ["/bin/sh", "-c", line],
            capture_output=True,
            text=True,
            timeout=30,
            env={"XDG_STATE_HOME": str(host.run)},
        )
        assert ran.returncode == 0, (line, ran.stdout)


def test_icinga2_validates(host: Layouts, tmp_path: Path) -> None:
    services = tmp_path / "discovered.conf"
    services.write_text(discover(host, "--format", "icinga2", "--host-name", "web1").stdout)
    conf = tmp_path / "main.conf"
    conf.write_text(
        f'const PluginDir = "/usr/lib/nagios/plugins"\nconst PluginContribDir = "{BIN}"\n'
        'const ManubulonPluginDir = "/usr/lib/nagios/plugins"\nconst NodeName = "localhost"\n'
        'const ZoneName = "localhost"\nconst TicketSalt = ""\ninclude <itl>\ninclude <plugins>\n'
        f'include "{ROOT / "contrib" / "icinga2" / "fastcgi.conf"}"\ninclude "{services}"\n'
        'object Host "web1" { check_command = "dummy"\n address = "127.0.0.1" }\n'
    )
    assert "Instantiated 9 Services." in validate(conf, tmp_path)


def test_zabbix_agent_returns_the_discovery(host: Layouts, tmp_path: Path) -> None:
    params = (ROOT / "contrib" / "zabbix" / "userparameter_fastcgi.conf").read_text()
    params = params.replace(INSTALLED_PLUGIN, CHECK).replace(
        "discover --format json", f"discover --format json --root {host.root}"
    )
    (tmp_path / "params.conf").write_text(params)
    conf = tmp_path / "agent.conf"
    conf.write_text(
        f"LogType=console\nAllowRoot=1\nTimeout=10\nPidFile={tmp_path / 'agent.pid'}\n"
        f"LogFile={tmp_path / 'agent.log'}\nInclude={tmp_path / 'params.conf'}\n"
    )

    def item(key: str) -> dict:
        done = subprocess.run(
            ["zabbix_agentd", "-c", str(conf), "-t", key], capture_output=True, text=True, timeout=60
        )
        match = re.search(r"\[t\|(.*)\]\s*$", done.stdout, re.S)
        assert match, done.stdout + done.stderr
        return json.loads(match.group(1))

    lld = item("fastcgi.discover[status]")
    assert len(lld["data"]) == 5
    www = next(entry for entry in lld["data"] if entry["{#TITLE}"] == "8.2 www")
    # The template's keys: the socket, or host and port, as separate macros.
    for entry in lld["data"]:
        where = (
            [entry["{#SOCKET}"]] if entry["{#TRANSPORT}"] == "unix" else [entry["{#HOST}"], entry["{#PORT}"]]
        )
        suffix = ".socket" if entry["{#TRANSPORT}"] == "unix" else ""
        alive = [*where, entry["{#PING_PATH}"], entry["{#PING_RESPONSE}"]]
        status = [*where, entry["{#STATUS_PATH}"], entry["{#POOL}"], entry["{#MAX_CHILDREN}"]]
        for key, params in (("alive", alive), ("status", status)):
            if key == "status" and not entry["{#STATUS_PATH}"]:
                continue
            found = item(f"fastcgi.pool.{key}{suffix}[" + ",".join(f'"{param}"' for param in params) + "]")
            assert found["state"] == "OK", (entry["{#TITLE}"], key, found)
    assert www["{#TRANSPORT}"] == "unix"


def test_from_running_finds_the_masters_alone(host: Layouts) -> None:
    """No master named, none at the usual places (--config names an empty
    one): the pools come from the masters' titles in /proc, and only the
    masters whose configuration is under --root, so the machine's own FPM
    counts for nothing."""
    empty = host.root / "empty.conf"
    empty.write_text("[global]\n")
    done = discover(host, "--config", str(empty), "--from-running", "--format", "json")
    assert done.returncode == 0, done.stdout
    listens = {entry["{#LISTEN}"] for entry in json.loads(done.stdout)["data"]}
    assert listens == {
        f"{host.sockets}/php8.2-www.sock",
        f"127.0.0.1:{host.ports['api']}",
        f"[::1]:{host.ports['legacy6']}",
        f"127.0.0.1:{host.ports['image']}",
        f"{host.sockets}/rhel-www.sock",
    }


# --- bad and hostile configuration -----------------------------------------------------------------


def test_broken_files_and_pools_are_one_line_each_and_the_rest_is_listed(tmp_path: Path) -> None:
    base = tmp_path / "etc" / "php" / "8.2" / "fpm"
    (base / "pool.d").mkdir(parents=True)
    (base / "php-fpm.conf").write_text(
        f"[global]\ninclude={base}/pool.d/*.conf\ninclude={tmp_path}/nothing/*.conf\n"
    )
    pool_d = base / "pool.d"
    (pool_d / "good.conf").write_text(
        "[good]\nlisten = 127.0.0.1:9101\npm = static\npm.max_children = 2\nping.path = /ping\n"
    )
    (pool_d / "nolisten.conf").write_text("[quiet]\npm = static\n")
    (pool_d / "garbage.conf").write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(200))
    (pool_d / "huge.conf").write_text("[huge]\nlisten = 9102\n" + ";" * (10 * 1024 * 1024))
    (pool_d / "loop.conf").symlink_to(base / "php-fpm.conf")  # the include glob matches its own master
    (pool_d / "badpm.conf").write_text("[badpm]\nlisten = 9103\npm = sometimes\n")
    (pool_d / "nested.conf").write_text("[nested]\nlisten = 9104\ninclude = /etc/passwd\n")
    done = subprocess.run(
        [CHECK, "discover", "--root", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout
    problems = [line for line in done.stdout.splitlines() if line.startswith("problem: ")]
    text = "\n".join(problems)
    assert f"{pool_d}/nolisten.conf:1: pool [quiet] has no listen address" in text
    assert f"{pool_d}/garbage.conf: not read: binary data" in text
    assert f"{pool_d}/huge.conf: not read: larger than 1024 KiB" in text
    assert f"{pool_d}/badpm.conf:1: pool [badpm]: pm must be static, dynamic or ondemand" in text
    assert f"{pool_d}/nested.conf:3: include in pool [nested]: FPM allows it in [global] only" in text
    assert f"{base}/php-fpm.conf:3: include matches no file" in text
    assert "good" in done.stdout.splitlines()[1]  # still listed
    assert "nested" in done.stdout  # its include refused, the pool itself is fine


def test_nothing_readable_is_unknown(tmp_path: Path) -> None:
    assert run_check("discover", "--root", str(tmp_path)).code == 3
    config = tmp_path / "php-fpm.conf"
    config.write_text("[global]\n")
    outcome = run_check("discover", "--config", str(config))
    assert outcome.code == 3 and outcome.first_line.startswith(
        f"FASTCGI UNKNOWN - discover: no pool could be read from {config}"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_an_unreadable_file_as_an_unprivileged_user(tmp_path: Path) -> None:
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    readable = Path(tempfile.mkdtemp(prefix="disc-"))
    readable.chmod(0o755)
    try:
        pyz = readable / "check_fastcgi.pyz"
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(pyz)], check=True, capture_output=True
        )
        pool_d = readable / "pool.d"
        pool_d.mkdir(mode=0o755)
        (readable / "php-fpm.conf").write_text(f"[global]\ninclude={pool_d}/*.conf\n")
        (pool_d / "open.conf").write_text("[open]\nlisten = 9105\n")
        (pool_d / "secret.conf").write_text("[secret]\nlisten = 9106\n")
        (pool_d / "secret.conf").chmod(0o600)
        done = subprocess.run(
            ["/usr/bin/python3", "-I", str(pyz), "discover", "--config", str(readable / "php-fpm.conf")],
            preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done
        assert f"problem: {pool_d}/secret.conf: cannot read: permission denied" in done.stdout
        assert "open" in done.stdout
    finally:
        shutil.rmtree(readable, ignore_errors=True)


def test_every_format_is_offered(host: Layouts) -> None:
    for output_format in ("table", "json", "icinga2", "nagios", "monit", "nrpe"):
        done = discover(host, "--format", output_format)
        assert done.returncode == 0 and done.stdout and done.stderr == ""
    assert discover(host, "--format", "yaml").returncode == 3


def test_serve_takes_its_targets_from_discovery(host: Layouts) -> None:
    from tests.sidecar import Sidecar  # noqa: PLC0415

    with Sidecar("--discover", "--discover-root", str(host.root)) as sidecar:
        assert sidecar.get("/8.2-www/ping")[0] == 200
        assert sidecar.get("/8.2-www/status")[0] == 200
        assert sidecar.get("/8.1-legacy/status")[0] == 200  # IPv6, no ping page
        assert sidecar.get("/8.1-legacy/handshake")[0] == 200
        status, text, _ = sidecar.get("/8.2-api/ping")
        assert status == 200, text


class StatusListenPool(FpmPool):
    """One pool of one worker whose status page is also served on
    pm.status_listen, by FPM's own pool for it."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, max_children=1)
        self.status_port = free_port()

    def pools(self) -> List[str]:
        self.pool_settings = {"pm.status_listen": f"127.0.0.1:{self.status_port}"}
        return [self._pool(self.pool_name, f"127.0.0.1:{self.port}")]


def test_serve_reads_the_status_page_where_pm_status_listen_says(tmp_path: Path) -> None:
    """With its one worker busy, the pool answers nothing on its listen;
    its status page still answers on pm.status_listen, which is where
    serve --discover asks for it, as discover's checks do."""
    from tests.sidecar import Sidecar  # noqa: PLC0415

    with StatusListenPool(tmp_path / "fpm") as pool, SlowRequest(pool, 20000):
        done = subprocess.run(
            [CHECK, "discover", "--from-running", "--root", str(pool.workdir), "--format", "nagios"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"check_fastcgi_status!-H 127.0.0.1 -p {pool.status_port}!--pool www" in done.stdout, done
        with Sidecar("--discover", "--discover-root", str(pool.workdir), "-t", "3") as sidecar:
            status, text, _ = sidecar.get("/www/status")
            assert status == 200, text
            assert "1 active" in text
            metrics = sidecar.get("/metrics")[1]
            assert 'phpfpm_up{pool="www",target="www"} 1.0' in metrics


def test_escapes_quotes_and_huge_numbers_never_reach_an_output(tmp_path: Path) -> None:
    """Control characters in a name or value are refused where they are
    read; a quote or a ; that an engine's format cannot carry leaves that
    pool out of that format, and what is written still validates."""
    config = tmp_path / "php-fpm.conf"
    config.write_text(
        '[global]\n[po"ol;x]\nlisten = /tmp/a"b.sock\npm = static\npm.max_children = 2\nping.path = /ping\n'
        "[semi]\nlisten = '/tmp/c;d.sock'\n"
        "[\x1b[31mred]\nlisten = 9001\n"
        "[esc]\nlisten = 9002\nping.response = pong\x1b[2J\n"
        "[big]\nlisten = 9003\npm.max_children = " + "9" * 42 + "\n"
        "[ok]\nlisten = 9004\nping.path = /ping\n"
    )
    run = lambda *args: subprocess.run(  # noqa: E731
        [CHECK, "discover", "--config", str(config), *args], capture_output=True, text=True, timeout=60
    )
    table = run().stdout
    assert "\x1b" not in table
    assert f"problem: {config}:9: a pool name with control characters or over 128 characters" in table
    assert f"problem: {config}:13: ping.response: the value has control characters" in table
    assert (
        f"problem: {config}:14: pool [big]: pm.max_children must be a whole number from 1 to 2147483647"
        in table
    )
    for output_format in ("json", "icinga2", "nagios", "monit", "nrpe"):
        assert "\x1b" not in run("--format", output_format).stdout
    services = tmp_path / "services.cfg"
    services.write_text(run("--format", "nagios", "--host-name", "web1").stdout)
    checked = subprocess.run(
        ["nagios4", "-v", str(nagios_cfg(tmp_path, services))], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout[-2000:]
    assert "# PHP-FPM semi handshake: left out, a value holds a ';' or a '\\'" in services.read_text()
    control = tmp_path / "monitrc"
    control.write_text(
        f"set daemon 60\nset pidfile {tmp_path / 'm.pid'}\nset idfile {tmp_path / 'm.id'}\n"
        f"set statefile {tmp_path / 'm.state'}\n" + run("--format", "monit", "--plugin", CHECK).stdout
    )
    control.chmod(0o600)
    checked = subprocess.run(["monit", "-t", "-c", str(control)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert """# php-fpm-po-ol-x-ping: left out, a value holds a '"'""" in control.read_text()
