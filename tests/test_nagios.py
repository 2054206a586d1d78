"""contrib/nagios in Debian's nagios4: `nagios4 -v` accepts a config that
uses the definitions, and the daemon itself runs them against a test pool."""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator, Sequence

import pytest

from tests.conftest import BIN
from tests.engines import ROOT, for_test_pool
from tests.fpm import FpmPool, wait_until

CONTRIB = ROOT / "contrib" / "nagios"
DEBIAN_OBJECTS = Path("/etc/nagios4/objects")

HOST = """
define command {
    command_name    check-host-alive
    command_line    /bin/true
}
define host {
    use         linux-server
    host_name   web1
    address     127.0.0.1
}
"""


def nagios_cfg(workdir: Path, services: Path, address: str = "127.0.0.1", extra: Sequence[Path] = ()) -> Path:
    """A nagios.cfg of Debian's object templates, contrib's commands,
    ``services``, the ``extra`` files and the host web1 at ``address``."""
    (workdir / "checkresults").mkdir(exist_ok=True)
    (workdir / "host.cfg").write_text(HOST.replace("127.0.0.1", address))
    (workdir / "resource.cfg").write_text(f"$USER1$={BIN}\n")
    settings = {
        "log_file": workdir / "nagios.log",
        "resource_file": workdir / "resource.cfg",
        "check_result_path": workdir / "checkresults",
        "status_file": workdir / "status.dat",
        "lock_file": workdir / "nagios.lock",
        "temp_file": workdir / "nagios.tmp",
        "temp_path": workdir,
        "object_cache_file": workdir / "objects.cache",
        "precached_object_file": workdir / "objects.precache",
        "state_retention_file": workdir / "retention.dat",
        "command_file": workdir / "nagios.cmd",
        "nagios_user": pwd.getpwuid(os.getuid()).pw_name,
        "nagios_group": grp.getgrgid(os.getgid()).gr_name,
        "illegal_macro_output_chars": "`~$&|'\"<>",
        # Seconds, and no spreading of the first checks: results at once.
        "interval_length": 1,
        "service_inter_check_delay_method": "n",
        "host_inter_check_delay_method": "n",
        "status_update_interval": 1,
        "check_result_reaper_frequency": 1,
        "retain_state_information": 0,
    }
    files = [
        DEBIAN_OBJECTS / name for name in ("commands.cfg", "contacts.cfg", "timeperiods.cfg", "templates.cfg")
    ]
    files += [CONTRIB / "fastcgi-commands.cfg", *extra, services, workdir / "host.cfg"]
    lines = [f"cfg_file={path}" for path in files] + [f"{key}={value}" for key, value in settings.items()]
    cfg = workdir / "nagios.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_nagios_verifies_the_definitions(tmp_path: Path) -> None:
    done = subprocess.run(
        ["nagios4", "-v", str(nagios_cfg(tmp_path, CONTRIB / "fastcgi-services.cfg"))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Total Warnings: 0" in done.stdout and "Total Errors:   0" in done.stdout
    assert "Checked 2 services." in done.stdout


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("nagios-pool"), max_children=3) as started:
        yield started


def service_status(status_file: Path) -> Dict[str, Dict[str, str]]:
    services: Dict[str, Dict[str, str]] = {}
    text = status_file.read_text(errors="replace") if status_file.exists() else ""
    for block in re.findall(r"servicestatus \{(.*?)\}", text, re.S):
        fields = dict(line.strip().split("=", 1) for line in block.strip().splitlines() if "=" in line)
        services[fields.get("service_description", "")] = fields
    return services


def test_the_daemon_runs_the_services(pool: FpmPool, tmp_path: Path) -> None:
    services = tmp_path / "services.cfg"
    services.write_text(for_test_pool((CONTRIB / "fastcgi-services.cfg").read_text(), pool))
    daemon = subprocess.Popen(
        ["nagios4", str(nagios_cfg(tmp_path, services))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seen: Dict[str, Dict[str, str]] = {}

    def checked() -> bool:
        # Nagios deletes status.dat when it stops: keep what was read.
        seen.update(service_status(tmp_path / "status.dat"))
        return len(seen) == 2 and all(s.get("has_been_checked") == "1" for s in seen.values())

    try:
        wait_until(checked, 60, "nagios running both services", interval=0.25)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    status = seen
    ping, pool_status = status["PHP-FPM ping"], status["PHP-FPM pool"]
    assert ping["current_state"] == "0", ping
    assert ping["plugin_output"].startswith(f"FASTCGI OK - {pool.socket_path} /ping answered 200 OK")
    assert re.search(r"time=[\d.]+s;0.5;2;0", ping["performance_data"])
    assert pool_status["current_state"] == "0", pool_status
    assert pool_status["plugin_output"].startswith("FASTCGI OK - pool www: ")
    assert (
        "active_percent=" in pool_status["performance_data"]
        and ";80;95;0;100" in pool_status["performance_data"]
    )
