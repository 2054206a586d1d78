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
