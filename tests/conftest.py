"""Fixtures: a real php-fpm for the session, and a runner for the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest

from tests.fpm import FpmPool
from tests.users import local_user  # noqa: F401 - a fixture, for every test module

BIN = Path(sys.executable).parent

#: Proofs that need a whole engine stack of their own: each has a make
#: target that sets its variable (and .ci/run calls it); a plain run does
#: not collect them, rather than listing them as skipped.
PROOFS = {
    "test_icinga2_agent.py": "CHECK_FASTCGI_ICINGA2_AGENT",
    "test_deb.py": "CHECK_FASTCGI_DEB",  # the .deb to install
    "test_zabbix_server.py": "CHECK_FASTCGI_ZABBIX_SERVER",
}
collect_ignore = [module for module, variable in PROOFS.items() if not os.environ.get(variable)]
CHECK = str(BIN / "check_fastcgi")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    elapsed: float
    peak_rss_kib: int = 0

    @property
    def first_line(self) -> str:
        return self.stdout.splitlines()[0] if self.stdout else ""

    @property
    def summary(self) -> str:
        """The first line without its perfdata."""
        return self.first_line.split(" | ")[0]

    @property
    def perfdata(self) -> dict:
        """label -> the perfdata field after '=' (value, uom and thresholds)."""
        text = " ".join(line.split("|", 1)[1] for line in self.stdout.splitlines() if "|" in line)
        return dict(item.split("=", 1) for item in text.split())


#: XDG_STATE_HOME of every check the tests run, so rates never write to the
#: real home; set per session by the ``state_home`` fixture.
STATE_HOME = {"path": ""}


#: What a check may take at its peak, whatever the server sends: the
#: interpreter, nagiosplugin and a reply at the cap.
PEAK_RSS_LIMIT_KIB = 60 * 1024


#: GNU time, a small C parent: what it reports is the plugin's own peak RSS.
#: (os.wait4 from pytest would not do: Linux carries the RSS of the forked
#: pytest image over the exec into ru_maxrss.)
GNU_TIME = "/usr/bin/time"


def run_check(
    *args: str, prefix: Sequence[str] = (), limit: float = 30, env: Optional[Dict[str, str]] = None
) -> Outcome:
    """Run the installed console script as an engine would: no stdin, a
    clean environment, stdout and stderr kept apart, peak memory measured
    from outside."""
    env = env or {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "XDG_STATE_HOME": STATE_HOME["path"] or "/nonexistent",
        # Any socket or file the plugin forgets to close fails the run.
        "PYTHONWARNINGS": "error::ResourceWarning",
        "PYTHONDEVMODE": "1",
    }
    with tempfile.NamedTemporaryFile("r") as usage:
        measure = [GNU_TIME, "-f", "%M", "-o", usage.name]
        started = time.monotonic()
        proc = subprocess.run(
            [*prefix, *measure, CHECK, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=limit,
            env=env,
        )
        elapsed = time.monotonic() - started
        lines = usage.read().split()
    return Outcome(proc.returncode, proc.stdout, proc.stderr, elapsed, int(lines[-1]) if lines else 0)


def assert_plugin_output(outcome: Outcome) -> None:
    """What every run must satisfy: one status line on stdout, nothing on
    stderr, no traceback."""
    assert outcome.stdout.startswith("FASTCGI "), outcome
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome
    assert outcome.stderr == "", outcome


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    STATE_HOME["path"] = str(tmp_path_factory.mktemp("state"))
    return Path(STATE_HOME["path"])


@pytest.fixture(scope="session")
def fpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    pool = FpmPool(tmp_path_factory.mktemp("fpm"))
    with pool:
        yield pool


@pytest.fixture(params=["tcp", "ipv6", "unix"])
def fpm_target(request: pytest.FixtureRequest, fpm: FpmPool) -> List[str]:
    """The session pool's listeners, one test run each."""
    return fpm.targets()[request.param]
