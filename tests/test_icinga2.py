"""contrib/icinga2 in Debian's icinga2: the config validates, and a real
daemon runs the checks against a test pool and writes OK with our perfdata
through its PerfdataWriter."""

from __future__ import annotations

import glob
import grp
import os
import pwd
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.conftest import BIN
from tests.engines import ROOT
from tests.fpm import FpmPool, wait_until

ICINGA2 = "/usr/lib/x86_64-linux-gnu/icinga2/sbin/icinga2"
CONTRIB = ROOT / "contrib" / "icinga2"


def icinga2() -> str:
    found = sorted(glob.glob("/usr/lib/*/icinga2/sbin/icinga2"))
    return found[0] if found else ICINGA2


def defines(workdir: Path) -> List[str]:
    """Every path the daemon writes, moved into the test's directory."""
    paths = {
        "DataDir": "data",
        "LogDir": "log",
        "CacheDir": "cache",
        "SpoolDir": "spool",
        "InitRunDir": "run",
        "PidPath": "run/icinga2.pid",
        "VarsPath": "cache/icinga2.vars",
        "ObjectsPath": "cache/icinga2.debug",
        "ModAttrPath": "data/modified-attributes.conf",
    }
    for sub in ("data", "log", "cache", "spool", "run", "perfdata"):
        (workdir / sub).mkdir(exist_ok=True)
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    out = [f"-DConfiguration.{name}={workdir / rel}" for name, rel in paths.items()]
    return [*out, f"-DConfiguration.RunAsUser={user}", f"-DConfiguration.RunAsGroup={group}"]


def main_conf(workdir: Path, pool: FpmPool) -> Path:
    services = (CONTRIB / "services.conf").read_text()
    # A 1 s cycle instead of the example's minute, so the test need not wait.
    services = services.replace("check_interval = 1m", "check_interval = 1s").replace(
        "retry_interval = 30s", "retry_interval = 1s"
    )
    (workdir / "services.conf").write_text(services)
    conf = workdir / "main.conf"
    conf.write_text(
        f"""
const PluginDir = "/usr/lib/nagios/plugins"
const PluginContribDir = "{BIN}"
const ManubulonPluginDir = "/usr/lib/nagios/plugins"
const NodeName = "localhost"
const ZoneName = "localhost"
const TicketSalt = ""
include <itl>
include <plugins>
include "{CONTRIB / "fastcgi.conf"}"
include "{workdir / "services.conf"}"
object CheckerComponent "checker" {{ }}
object PerfdataWriter "perfdata" {{
  service_perfdata_path = "{workdir / "perfdata" / "service-perfdata"}"
  service_temp_path = "{workdir / "perfdata" / "service-perfdata.tmp"}"
  host_perfdata_path = "{workdir / "perfdata" / "host-perfdata"}"
  host_temp_path = "{workdir / "perfdata" / "host-perfdata.tmp"}"
  rotation_interval = 1s
  service_format_template = "DATATYPE::SERVICEPERFDATA\tSERVICEDESC::$service.name$\tSERVICEPERFDATA::$service.perfdata$\tSERVICESTATE::$service.state$\tSERVICEOUTPUT::$service.output$"
}}
object Host "php-host" {{
  check_command = "dummy"
  address = "127.0.0.1"
  vars.php_fpm_socket = "{pool.socket_path}"
  vars.php_fpm_port = {pool.port}
}}
"""
    )
    return conf


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    workdir = tmp_path_factory.mktemp("icinga2")
    with FpmPool(workdir / "fpm", max_children=3) as pool:
        yield workdir, pool, main_conf(workdir, pool)


def validate(conf: Path, workdir: Path) -> str:
    """`icinga2 daemon -C` on a config: what it printed, once it accepted it."""
    done = subprocess.run(
        [icinga2(), "daemon", "-C", "-c", str(conf), *defines(workdir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


def test_config_validates(setup: tuple) -> None:
    workdir, _, conf = setup
    assert "Instantiated 2 Services." in validate(conf, workdir)


def perfdata_lines(workdir: Path) -> List[Dict[str, str]]:
    lines = []
    for path in (workdir / "perfdata").glob("service-perfdata*"):
        # Whatever follows the last newline is a line still being written.
        for line in path.read_text(errors="replace").split("\n")[:-1]:
            lines.append(dict(field.split("::", 1) for field in line.split("\t") if "::" in field))
    return lines


def test_the_daemon_runs_the_checks(setup: tuple) -> None:
    workdir, pool, conf = setup
    daemon = subprocess.Popen(
        [icinga2(), "daemon", "-c", str(conf), *defines(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: Dict[str, Dict[str, str]] = {}

    def recorded() -> bool:
        # The temp file may end in a line still being written: only complete
        # lines count. Keep what was read: the daemon rotates the files away.
        for line in perfdata_lines(workdir):
            if line.keys() >= {"SERVICEDESC", "SERVICESTATE", "SERVICEOUTPUT", "SERVICEPERFDATA"}:
                seen.setdefault(line["SERVICEDESC"], line)
        return {"php-fpm-ping", "php-fpm-status"} <= seen.keys()

    try:
        wait_until(recorded, 60, "icinga2 perfdata", interval=0.25)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    ping, status = seen["php-fpm-ping"], seen["php-fpm-status"]
    assert ping["SERVICESTATE"] == "OK", ping
    assert ping["SERVICEOUTPUT"].startswith(f"FASTCGI OK - {pool.socket_path} /ping answered 200 OK")
    assert "size=4B;;;0" in ping["SERVICEPERFDATA"] and "time=" in ping["SERVICEPERFDATA"]
    assert status["SERVICESTATE"] == "OK", status
    assert status["SERVICEOUTPUT"].startswith("FASTCGI OK - pool www: ")
    # The arrays became repeated -w/-c, each on its own metric.
    assert "active_percent=" in status["SERVICEPERFDATA"] and "%;80;95;0;100" in status["SERVICEPERFDATA"]
    assert "listen_queue=0;1;10;0" in status["SERVICEPERFDATA"]
    assert "longest_request=" in status["SERVICEPERFDATA"]
