"""Exit codes 0-3 and one status line, whatever happens to the process: a
signal in its first milliseconds, a closed or full stdout, output that takes
past the deadline to render, a uid with no passwd entry; and the fast exit
gives exactly what the full one does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import CHECK
from tests.engines import ROOT
from tests.fpm import FpmPool, wait_until


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for the signal (/proc SigCgt)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_as_soon_as_it_is_caught_gives_one_unknown_line(signum: int) -> None:
    """The handlers come before nagiosplugin and fcgi_wire load: a signal in
    those milliseconds is an UNKNOWN line, not 128+N and silence."""
    with servers.ScriptedServer(servers.silent) as server:
        proc = subprocess.Popen(
            [CHECK, "ping", *server.args, "-t", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: proc.poll() is not None or catches(proc.pid, signum), 10, "signal handler", 0.0005)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    name = signal.Signals(signum).name
    assert (proc.returncode, out, err) == (3, f"FASTCGI UNKNOWN - interrupted by {name}\n", "")


def test_a_closed_or_full_stdout_is_exit_3_without_a_traceback() -> None:
    closed = subprocess.run(
        ["/bin/sh", "-c", f"exec {CHECK} ping -p 1 >&-"], capture_output=True, text=True, timeout=30
    )
    assert (closed.returncode, closed.stderr) == (3, "")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [CHECK, "ping", "-p", "1"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=30
        )
    assert (done.returncode, done.stderr) == (3, "")


SLOW_PRINT = """
import sys, time
import nagiosplugin
from check_fastcgi import runner
from check_fastcgi.output import Output
from check_fastcgi.target import Limits, Target
import fcgi_wire

class Probe(nagiosplugin.Resource):
    def probe(self):
        return [nagiosplugin.Metric("x", 1, context="default")]

class SlowSummary(nagiosplugin.Summary):
    def verbose(self, results):
        # Rendering long output takes past the deadline and the safety margin.
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            pass
        return ["detail"]

limits = Limits(timeout=0.2, deadline=time.monotonic() + 0.2)
target = Target(fcgi_wire.TcpAddress("127.0.0.1", 9), limits)
runner.run(nagiosplugin.Check(Probe(), SlowSummary()), Output(verbosity=1), target, "ping")
"""


def test_the_safety_timer_is_off_while_the_output_is_printed() -> None:
    done = subprocess.run([sys.executable, "-c", SLOW_PRINT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done
    assert done.stdout.startswith("FASTCGI OK")
    assert done.stdout.count("FASTCGI") == 1, done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as a uid without a passwd entry")
def test_a_uid_without_passwd_entry_or_home_still_checks(fpm: FpmPool) -> None:
    """A container's arbitrary uid: no passwd entry, no HOME (KeyError before).
    It runs the zipapp with Debian's python3 from a directory it can read."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    uid = 54321
    state_dir = Path(f"/var/tmp/check_fastcgi-{uid}")
    python = shutil.which("python3", path="/usr/bin")
    assert python, "Debian's python3 is part of the base system"
    readable = Path(tempfile.mkdtemp(prefix="uid-"))
    readable.chmod(0o755)
    pyz = readable / "check_fastcgi.pyz"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(pyz)], check=True, capture_output=True
    )
    pyz.chmod(0o755)
    done = subprocess.run(
        [python, "-I", str(pyz), "status", *fpm.targets()["tcp"], "-v"],
        env={"PATH": "/usr/bin:/bin"},
        preexec_fn=lambda: (os.setgid(uid), os.setuid(uid)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        assert done.returncode == 0, done
        assert "internal error" not in done.stdout
        assert "note: no rates yet: first run" in done.stdout
        assert state_dir.stat().st_uid == uid
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(readable, ignore_errors=True)


def test_the_fast_exit_prints_and_exits_exactly_as_the_full_one(fpm: FpmPool) -> None:
    """Outside dev mode a check ends with os._exit once its output is
    flushed (the interpreter's teardown was half of a check's overhead):
    the same bytes and exit codes as the full exit the tests use."""
    import os as _os  # noqa: PLC0415

    base = {
        "PATH": _os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C.UTF-8",
        "XDG_STATE_HOME": "/nonexistent",
    }
    cases = [
        (["ping", *fpm.targets()["tcp"]], 0),
        (["ping", "-p", "1"], 2),
        (["ping", "-p", "1", "--format", "json"], 0),
        (["status", "-w", "bogus=1"], 3),
        (["--version"], 3),
    ]
    for args, code in cases:
        fast = subprocess.run([CHECK, *args], capture_output=True, text=True, env=base, timeout=30)
        full = subprocess.run(
            [CHECK, *args], capture_output=True, text=True, env={**base, "PYTHONDEVMODE": "1"}, timeout=30
        )
        assert (fast.returncode, fast.stderr) == (full.returncode, full.stderr) == (code, ""), (
            args,
            fast,
            full,
        )
        strip = re.compile(r"\d+\.\d+ ms|time=[\d.e-]+s")  # the timings differ, nothing else may
        assert strip.sub("", fast.stdout) == strip.sub("", full.stdout) != "", args
