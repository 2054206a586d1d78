"""contrib/nagios in Debian's nagios4: `nagios4 -v` accepts a config that
uses the definitions, and the daemon itself runs them against a test pool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.engines import for_test_pool
from tests.fpm import FpmPool, wait_until
from tests.nagios import CONTRIB, nagios_cfg, service_status


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
