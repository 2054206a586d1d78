"""The README's recipe for giving the monitoring user the socket without
adding it to www-data: ``listen.acl_users``, tried by a real second user
against a real pool (the plugin as the zipapp, run by Debian's python3, as
a user who cannot read root's venv)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.engines import ROOT
from tests.fpm import FpmPool
from tests.users import LocalUser


@pytest.fixture(scope="module")
def pyz() -> Iterator[Path]:
    readable = Path(tempfile.mkdtemp(prefix="pyz-"))
    readable.chmod(0o755)
    output = readable / "check_fastcgi.pyz"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(output)], check=True, capture_output=True
    )
    yield output
    shutil.rmtree(readable, ignore_errors=True)


def ping_as(user: LocalUser, pyz: Path, pool: FpmPool) -> subprocess.CompletedProcess:
    return user.run(["/usr/bin/python3", "-I", str(pyz), "ping", "-s", str(pool.socket_path), "-t", "5"])


def test_without_access_the_user_is_told_the_fix(
    local_user: LocalUser, pyz: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with FpmPool(tmp_path_factory.mktemp("noacl"), max_children=1) as pool:
        done = ping_as(local_user, pyz, pool)
    assert done.returncode == 3, done
    assert "permission denied" in done.stdout and "socket's group" in done.stdout


def test_listen_acl_users_gives_the_monitoring_user_the_socket(
    local_user: LocalUser, pyz: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = {"listen.acl_users": f"www-data,{local_user.name}"}
    with FpmPool(tmp_path_factory.mktemp("acl"), max_children=1, pool_settings=settings) as pool:
        done = ping_as(local_user, pyz, pool)
    assert done.returncode == 0, done
    assert done.stdout.startswith(f"FASTCGI OK - {pool.socket_path} /ping answered 200 OK")
