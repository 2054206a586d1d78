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


def test_the_file_is_small_executable_by_all_and_isolated(pyz: Path) -> None:
    # -I: a check_fastcgi or nagiosplugin module planted in the working
    # directory or on PYTHONPATH is never imported (field report, item 8).
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env -S python3 -I\n")
    assert pyz.stat().st_mode & 0o777 == 0o755  # zipapp's own 0744 kept nobody out (item 17)
    assert pyz.stat().st_size < 200_000


def test_the_archive_names_what_it_bundles_and_ships_the_licence(pyz: Path) -> None:
    """Field report, item 8: a pinned nagiosplugin, recorded, with its licence."""
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(pyz) as archive:
        bundled = archive.read("BUNDLED.txt").decode()
        licence = archive.read("LICENSES/nagiosplugin-LICENSE.txt").decode()
    assert "nagiosplugin 1.4.0 (ZPL-2.1, LICENSES/)" in bundled
    assert bundled.startswith("check_fastcgi 0.2.0\nfcgi_wire 0.2.0\n")
    assert "Zope Public License" in licence


def test_a_module_planted_on_pythonpath_is_not_run(pyz: Path, tmp_path: Path) -> None:
    """Without -I, PYTHONPATH comes before the standard library: a planted
    argparse.py would run as whoever runs the check."""
    (tmp_path / "argparse.py").write_text("print('PLANTED')\nraise SystemExit(0)\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([str(pyz), "--version"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.stdout.startswith("check_fastcgi 0.2.0"), done
    unprotected = subprocess.run(
        ["python3", str(pyz), "--version"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert unprotected.stdout.startswith("PLANTED")  # what -I prevents
