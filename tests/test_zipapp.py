"""make zipapp: one file, nagiosplugin inside, run by a bare python3."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.fpm import FpmPool

ROOT = Path(__file__).resolve().parent.parent


def bare_pythons() -> List[str]:
    """Interpreters with no nagiosplugin: this one under -S (no site-packages),
    Debian's own python3 and, where pyenv has one, a 3.9."""
    found = [sys.executable]
    found += [p for p in ["/usr/bin/python3"] if Path(p).exists()]
    found += sorted(glob.glob("/root/.pyenv/versions/3.9.*/bin/python3.9"))[:1]
    return found


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("zipapp") / "check_fastcgi.pyz"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(output)], check=True, capture_output=True
    )
    return output


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("zipapp-pool"), max_children=2) as started:
        yield started


@pytest.mark.parametrize("python", bare_pythons())
def test_all_modes_from_the_single_file(python: str, pyz: Path, pool: FpmPool, tmp_path: Path) -> None:
    no_site = ["-S"]  # site-packages off: nagiosplugin can only come from the .pyz
    probe = subprocess.run([python, *no_site, "-c", "import nagiosplugin"], capture_output=True)
    assert probe.returncode != 0, "this interpreter would find nagiosplugin outside the .pyz"
    target = pool.targets()["tcp"]
    env = {"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path)}
    for mode, expected in [
        ("handshake", "answered FCGI_GET_VALUES"),
        ("ping", "/ping answered 200 OK"),
        ("status", "pool www:"),
    ]:
        done = subprocess.run(
            [python, *no_site, str(pyz), mode, *target], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, (python, done.stdout, done.stderr)
        assert done.stdout.startswith("FASTCGI OK - ") and expected in done.stdout
        assert done.stderr == ""


def test_the_file_is_small_and_executable(pyz: Path) -> None:
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert pyz.stat().st_mode & 0o100
    assert pyz.stat().st_size < 200_000
