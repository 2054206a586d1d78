"""Debian's icinga2 for the tests: its binary, the defines that keep the
daemon's files in a test's directory, `daemon -C`, and PerfdataWriter's lines."""

from __future__ import annotations

import glob
import grp
import os
import pwd
import subprocess
from pathlib import Path
from typing import Dict, List

ICINGA2 = "/usr/lib/x86_64-linux-gnu/icinga2/sbin/icinga2"


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


def perfdata_lines(workdir: Path) -> List[Dict[str, str]]:
    lines = []
    for path in (workdir / "perfdata").glob("service-perfdata*"):
        # Whatever follows the last newline is a line still being written.
        for line in path.read_text(errors="replace").split("\n")[:-1]:
            lines.append(dict(field.split("::", 1) for field in line.split("\t") if "::" in field))
    return lines
