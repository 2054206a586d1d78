"""make zipapp: one file, nagiosplugin and serve's prometheus_client (and
tomli for 3.9 and 3.10) inside, run by a bare python3."""

from __future__ import annotations

import glob
import http.client
import shutil
import subprocess
import sys
import zipapp
import zipfile
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.fpm import FpmPool, free_port, wait_until

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
    assert pyz.stat().st_size < 300_000  # prometheus_client is most of it


def test_the_archive_names_what_it_bundles_and_ships_the_licence(pyz: Path) -> None:
    """Field report, item 8: pinned packages, recorded, with their licences."""
    with zipfile.ZipFile(pyz) as archive:
        bundled = archive.read("BUNDLED.txt").decode()
        licence = archive.read("LICENSES/nagiosplugin-LICENSE.txt").decode()
        prometheus = archive.read("LICENSES/prometheus_client-LICENSE").decode()
        notice = archive.read("LICENSES/prometheus_client-NOTICE").decode()
        tomli = archive.read("LICENSES/tomli-LICENSE").decode()
        names = archive.namelist()
    assert "nagiosplugin 1.4.0 (ZPL-2.1, LICENSES/)" in bundled
    assert bundled.startswith("check_fastcgi 0.2.0\nfcgi_wire 0.2.0\n")
    assert "Zope Public License" in licence
    assert "prometheus_client 0.26.0 (Apache-2.0 AND BSD-2-Clause, LICENSES/): serve" in bundled
    assert "Apache License" in prometheus and "Prometheus" in notice
    assert "tomli 2.0.1 (MIT, LICENSES/)" in bundled and "MIT License" in tomli
    assert not [name for name in names if name.endswith((".so", ".pyc"))]  # pure Python, any python3


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


def serve_pythons() -> List[str]:
    """bare_pythons() and, where pyenv has one, a 3.10: tomli (not tomllib)
    reads --config on 3.9 and 3.10."""
    return bare_pythons() + sorted(glob.glob("/root/.pyenv/versions/3.10.*/bin/python3.10"))[:1]


def get(port: int, path: str) -> Tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def answered(port: int, path: str) -> bool:
    try:
        return get(port, path)[0] == 200
    except OSError:
        return False


def stopped(server: subprocess.Popen) -> Tuple[int, str]:  # type: ignore[type-arg]
    server.terminate()
    try:
        _, stderr = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        _, stderr = server.communicate()
    return server.returncode, stderr


@pytest.mark.parametrize("python", serve_pythons())
def test_serve_from_the_single_file(python: str, pyz: Path, pool: FpmPool, tmp_path: Path) -> None:
    """-I -S: isolated, and no site-packages, so prometheus_client (and tomli
    on 3.9/3.10) can only come from the .pyz; targets from a --config file."""
    probe = subprocess.run([python, "-I", "-S", "-c", "import prometheus_client"], capture_output=True)
    assert probe.returncode != 0, "this interpreter would find prometheus_client outside the .pyz"
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\ntimeout = 10\n[targets.www]\naddress = "127.0.0.1:{pool.port}"\n'
    )
    env = {"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [python, "-I", "-S", str(pyz), "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_until(lambda: server.poll() is not None or answered(port, "/ping"), 60, f"serve under {python}")
        assert server.poll() is None, stopped(server)
        status, body = get(port, "/ping")
        assert status == 200 and body.startswith("FASTCGI OK - "), body
        status, metrics = get(port, "/metrics")
        assert status == 200 and "phpfpm_up{" in metrics, metrics[:2000]
    finally:
        code, stderr = stopped(server)
    assert code == 0, stderr
    assert "listening on 127.0.0.1:" in stderr and "Traceback" not in stderr, stderr


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no Debian python3")
def test_serve_under_debians_python3_isolated(pyz: Path, pool: FpmPool, tmp_path: Path) -> None:
    """As the shebang runs it: Debian's /usr/bin/python3 -I, /ping 200."""
    port = free_port()
    server = subprocess.Popen(
        [
            "/usr/bin/python3",
            "-I",
            str(pyz),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            *pool.targets()["tcp"],
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path)},
    )
    try:
        wait_until(
            lambda: server.poll() is not None or answered(port, "/ping"), 60, "serve under /usr/bin/python3"
        )
        assert server.poll() is None, stopped(server)
        status, body = get(port, "/ping")
        assert status == 200 and body.startswith("FASTCGI OK - "), body
    finally:
        code, stderr = stopped(server)
    assert code == 0, stderr


def test_a_zipapp_without_prometheus_client_says_to_rebuild_it(pyz: Path, tmp_path: Path) -> None:
    """A zipapp's user cannot pip install into it: the message says what
    does help."""
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(pyz) as archive:
        archive.extractall(unpacked)
    shutil.rmtree(unpacked / "prometheus_client")
    lean = tmp_path / "lean.pyz"
    zipapp.create_archive(unpacked, target=lean, interpreter="/usr/bin/env -S python3 -I")
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(lean), "serve", "--target", "www=127.0.0.1:1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done
    assert done.stderr == (
        "check_fastcgi serve: needs prometheus_client, which this zipapp lacks: build a new one with make zipapp\n"
    )
