"""The packages stand on their own: fcgi_wire without nagiosplugin, the plugin as a command and a module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import CHECK, run_check


def test_fcgi_wire_imports_nothing_outside_the_standard_library() -> None:
    code = (
        "import sys, fcgi_wire\n"
        "stdlib = set(sys.stdlib_module_names) if hasattr(sys, 'stdlib_module_names') else None\n"
        "mods = {m.split('.')[0] for m in sys.modules}\n"
        "assert 'nagiosplugin' not in mods, 'nagiosplugin imported'\n"
        "foreign = sorted(m for m in mods - {'fcgi_wire'} if stdlib is not None and m not in stdlib and not m.startswith('_'))\n"
        "print(foreign)\n"
    )
    # -S: no site-packages at all, so nagiosplugin cannot even be found;
    # fcgi_wire comes from the working directory.
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=_repo())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_handshake_does_not_import_other_modes() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['check_fastcgi', 'handshake', '-p', '1']\n"
        "from check_fastcgi import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('check_fastcgi.')))\n"
    )
    # -X dev: the full exit (SystemExit), not the fast one a check takes.
    result = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True)
    loaded = result.stdout.strip().splitlines()[-1]
    assert "check_fastcgi.modes.handshake" in loaded
    assert "check_fastcgi.modes.status" not in loaded and "check_fastcgi.modes.ping" not in loaded
    assert "check_fastcgi.fpm.status_page" not in loaded


def test_python_dash_m_runs_the_plugin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_fastcgi", "handshake", "-p", "1"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stdout.startswith("FASTCGI CRITICAL - connect to 127.0.0.1:1: connection refused")


def test_console_script_is_installed() -> None:
    assert run_check("--version").stdout.startswith("check_fastcgi ")
    assert CHECK.endswith("check_fastcgi")


def _repo() -> str:
    return str(Path(__file__).resolve().parent.parent)


def test_debian_changelog_is_at_the_packages_version() -> None:
    """debian/ is a native package of this tree: its version is ours."""
    from check_fastcgi import __version__  # noqa: PLC0415

    first = (Path(_repo()) / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"check-fastcgi ({__version__}) "), first


def test_what_debian_rules_installs_is_there_by_its_stable_name() -> None:
    """debian/rules installs these by name (the CheckCommand finds the
    plugin where Debian's Icinga 2 sets PluginContribDir)."""
    root = Path(_repo())
    assert (
        'command = [ PluginContribDir + "/check_fastcgi" ]'
        in (root / "contrib/icinga2/fastcgi.conf").read_text()
    )
    assert "$USER1$/check_fastcgi" in (root / "contrib/nagios/fastcgi-commands.cfg").read_text()
    rules = (root / "debian" / "rules").read_text()
    for name in ["contrib/icinga2/fastcgi.conf", "contrib/nagios/fastcgi-commands.cfg", "debian/serve.toml"]:
        assert name in rules


def test_the_sdist_carries_the_project_and_builds_offline(tmp_path: Path) -> None:
    """MANIFEST.in: tests, examples, docs, tools, stubs and debian/ go into
    the sdist, no build or test leftovers do; setuptools alone (no
    network, no isolation) builds it from a copy of the tree."""
    import shutil  # noqa: PLC0415
    import tarfile  # noqa: PLC0415

    root = Path(_repo())
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    tree = tmp_path / "tree"
    for name in (n.decode() for n in listed.split(b"\0") if n):
        if (root / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, tree / name)
    # Leftovers a Debian build or a test run may leave in a tree.
    (tree / "debian" / "check-fastcgi" / "usr").mkdir(parents=True)
    (tree / "debian" / "check-fastcgi" / "usr" / "x").write_text("")
    (tree / "debian" / "files").write_text("")
    (tree / "tests" / "__pycache__").mkdir(exist_ok=True)
    (tree / "tests" / "__pycache__" / "x.cpython-311.pyc").write_text("")
    build = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "out")], cwd=tree, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sdist = tmp_path / "out" / done.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for carried in [
        "tests/fpm.py",
        "contrib/icinga2/fastcgi.conf",
        "monit-examples/README.md",
        "docs/fcgi_wire.md",
    ]:
        assert carried in names
    for carried in [
        "tools/build-zipapp",
        "stubs/nagiosplugin/__init__.pyi",
        "debian/rules",
        "debian/control",
    ]:
        assert carried in names
    assert not [n for n in names if n.startswith("debian/check-fastcgi/") or n == "debian/files"]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
