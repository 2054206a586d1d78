"""contrib/icinga2 in Debian's icinga2: the config validates, a real
daemon runs the checks against a test pool and writes OK with our perfdata
through its PerfdataWriter, and what discover writes loads into Debian's
stock /etc/icinga2 as it is, next to every contrib file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.conftest import BIN, CHECK
from tests.engines import ROOT
from tests.fpm import FpmPool, wait_until
from tests.icinga2 import defines, icinga2, perfdata_lines, validate

CONTRIB = ROOT / "contrib" / "icinga2"
#: What Debian's icinga2-common installs (icinga2-bin depends on it).
STOCK = Path("/etc/icinga2")
#: Where Debian's check-fastcgi package puts the CheckCommand.
PACKAGED = Path("/usr/share/icinga2/include/plugins-contrib.d")


def main_conf(workdir: Path, pool: FpmPool) -> Path:
    services = (CONTRIB / "php-fpm-services.conf").read_text()
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


def test_config_validates(setup: tuple) -> None:
    workdir, _, conf = setup
    assert "Instantiated 2 Services." in validate(conf, workdir)


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


# --- Debian's stock /etc/icinga2 -----------------------------------------------------------------


def test_no_contrib_file_takes_a_stock_files_name() -> None:
    """Copied into conf.d/, contrib's services.conf replaced Icinga's own."""
    stock = {path.name for path in STOCK.rglob("*")}
    assert "services.conf" in stock and "hosts.conf" in stock  # the stock tree is there
    assert not {path.name for path in CONTRIB.iterdir()} & stock


def stock_tree(workdir: Path) -> Path:
    """A copy of Debian's /etc/icinga2 as the package installed it."""
    tree = workdir / "etc-icinga2"
    shutil.copytree(STOCK, tree, symlinks=True)
    return tree


def objects(workdir: Path, kind: str) -> Dict[str, Dict[str, str]]:
    """The objects of a kind that the last `daemon -C` on ``workdir``
    compiled (icinga2 object list): name -> top-level attribute -> value."""
    done = subprocess.run(
        [icinga2(), "object", "list", "--type", kind, *defines(workdir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found: Dict[str, Dict[str, str]] = {}
    for block in re.split(r"^Object '", done.stdout, flags=re.M)[1:]:
        name = block.split("' of type ", 1)[0]
        found[name] = dict(re.findall(r"^  \* (\w+) = (.*)$", block, re.M))
    return found


def test_discover_output_loads_into_the_stock_tree(setup: tuple, tmp_path: Path) -> None:
    """An operator drops discover's output (no options) and contrib's files
    into a stock conf.d/ and validates with the stock icinga2.conf: the
    discovered services land on the stock host (NodeName), the stock ones
    are all still there, and the agent example's services run on its agent."""
    _, pool, _ = setup
    tree = stock_tree(tmp_path)
    validate(tree / "icinga2.conf", tmp_path)
    stock_services = set(objects(tmp_path, "Service"))
    node = next(name.split("!")[0] for name in stock_services if name.endswith("!load"))
    for contrib in CONTRIB.iterdir():
        if not (
            PACKAGED / contrib.name
        ).exists():  # the package's CheckCommand comes by include <plugins-contrib>
            shutil.copyfile(contrib, tree / "conf.d" / contrib.name)
    done = subprocess.run(
        [CHECK, "discover", "--config", str(pool.workdir / "php-fpm.conf"), "--format", "icinga2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "host_name = NodeName" in done.stdout, done
    (tree / "conf.d" / "php-fpm.conf").write_text(done.stdout)
    validate(tree / "icinga2.conf", tmp_path)
    services = objects(tmp_path, "Service")
    assert stock_services < set(services)
    discovered = {
        f"{node}!PHP-FPM {name} {mode}" for name in ("www", "www6", "www-unix") for mode in ("ping", "status")
    }
    assert discovered <= set(services)
    unix_ping = services[f"{node}!PHP-FPM www-unix ping"]
    assert unix_ping["check_command"] == '"fastcgi"' and unix_ping["command_endpoint"] == '""'
    # contrib's agent example: its services run on the agent, in the master's zone.
    agent = "web1.example.com"
    for name in ("php-fpm-ping", "php-fpm-status"):
        assert services[f"{agent}!{name}"]["command_endpoint"] == f'"{agent}"'
        assert services[f"{agent}!{name}"]["zone"] == f'"{node}"'
