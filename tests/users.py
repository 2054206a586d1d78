"""A real second local user for the tests of what a hostile user can do:
created by the ``local_user`` fixture (useradd), removed after (userdel),
with a home of its own that it can write and others can read.

Processes run as this user through ``subprocess``'s ``user=``/``group=``
(the tests run as root, as CI does), never by faking an owner with chown
alone, so whatever the plugin reads from /proc or the file system is what
a real user's process and files look like.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest


@dataclass
class LocalUser:
    name: str
    uid: int
    gid: int
    home: Path

    def run(self, command: list, **kwargs: Any) -> subprocess.CompletedProcess:
        """``command`` as this user, with a clean environment."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        return subprocess.run(
            command, user=self.uid, group=self.gid, extra_groups=[], env=self.env(), **kwargs
        )

    def popen(self, command: list, **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LC_ALL": "C.UTF-8", **(extra or {})}

    def write(self, relative: str, text: str, mode: int = 0o644) -> Path:
        """A file in the user's home, made by the user (so it is theirs)."""
        path = self.home / relative
        done = self.run(
            [
                "/bin/sh",
                "-c",
                'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"',
                "-",
                str(path),
                f"{mode:o}",
            ],
            input=text,
        )
        assert done.returncode == 0, done.stderr
        return path


def _create() -> LocalUser:
    name = f"cfcgi{os.getpid() % 100000}"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", "--user-group", name],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o755)
    return LocalUser(name, entry.pw_uid, entry.pw_gid, home)


def _remove(user: LocalUser) -> None:
    subprocess.run(["pkill", "-KILL", "-u", user.name], capture_output=True)
    subprocess.run(["userdel", user.name], capture_output=True)
    shutil.rmtree(user.home, ignore_errors=True)


@pytest.fixture(scope="session")
def local_user() -> Iterator[LocalUser]:
    """A second, unprivileged local user (the tests run as root)."""
    if os.geteuid() != 0:  # pragma: no cover - CI and make test run as root
        pytest.fail("the hostile-user tests create a real user: run them as root (make test does)")
    user = _create()
    try:
        yield user
    finally:
        _remove(user)
