"""A throwaway PHP-FPM master for tests and the demo.

One master, three pools on the same settings: TCP on 127.0.0.1, TCP on
[::1] and a Unix socket, each on a free port or a path in its own directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

PING_PATH = "/ping"
STATUS_PATH = "/status"

# Scripts the pool serves from its docroot.
SCRIPTS = {
    # Echoes what the request carried, so tests can see what was sent.
    "health.php": """<?php
header('Content-Type: text/plain');
if (isset($_GET['status'])) { http_response_code((int) $_GET['status']); }
error_log('health.php says hello on stderr');
echo "method=", $_SERVER['REQUEST_METHOD'], "\n";
echo "query=", $_SERVER['QUERY_STRING'], "\n";
echo "body=", file_get_contents('php://input'), "\n";
echo "content_type=", $_SERVER['CONTENT_TYPE'] ?? '-', "\n";
echo "probe=", $_SERVER['HTTP_X_PROBE'] ?? '-', "\n";
echo "leak=", $_SERVER['CHECK_FASTCGI_LEAK'] ?? '-', "\n";
echo "params=", implode(',', array_keys(array_filter($_SERVER, 'is_string'))), "\n";
echo "healthy\n";
""",
    # Occupies a worker: touches ?marker=FILE when it starts, sleeps ?ms=N.
    "slow.php": """<?php
if (isset($_GET['marker'])) { touch($_GET['marker']); }
usleep((int) ($_GET['ms'] ?? 1000) * 1000);
echo "slept\n";
""",
}


def find_php_fpm() -> str:
    """$PHP_FPM, php-fpm on PATH, or Debian's versioned /usr/sbin/php-fpmX.Y."""
    candidates = [os.environ.get("PHP_FPM"), shutil.which("php-fpm")]
    candidates += sorted(glob.glob("/usr/sbin/php-fpm[0-9]*"), reverse=True)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("php-fpm not found: run 'make test' (it installs Debian's php-fpm) or set PHP_FPM")


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s")
        time.sleep(interval)


class FpmPool:
    """Start with ``start()`` (or as a context manager), stop with ``stop()``."""

    def __init__(
        self,
        workdir: Path,
        max_children: int = 3,
        pool_settings: Optional[Dict[str, str]] = None,
        pool_name: str = "www",
    ) -> None:
        self.workdir = Path(workdir)
        self.max_children = max_children
        self.pool_settings = pool_settings or {}
        self.pool_name = pool_name
        self.port = free_port("127.0.0.1")
        self.port6 = free_port("::1")
        # Unix socket paths are limited to ~107 bytes, so keep this one short.
        self.socket_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"fpm-{os.getpid()}-{id(self):x}"
        self.socket_path = self.socket_dir / "fpm.sock"
        self.docroot = self.workdir / "docroot"
        self.error_log = self.workdir / "php-fpm.log"
        self.process: Optional[subprocess.Popen[bytes]] = None

    # --- the configuration -----------------------------------------------------

    def _pool(self, name: str, listen: str) -> str:
        settings = {
            "listen": listen,
            "pm": "static",
            "pm.max_children": str(self.max_children),
            "ping.path": PING_PATH,
            "pm.status_path": STATUS_PATH,
            "catch_workers_output": "yes",
            "clear_env": "yes",
            "request_slowlog_timeout": "0",
        }
        settings.update(self.pool_settings)
        lines = [f"[{name}]"] + [f"{key} = {value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def config(self) -> str:
        head = (
            "[global]\n"
            f"pid = {self.workdir / 'php-fpm.pid'}\n"
            f"error_log = {self.error_log}\n"
            "daemonize = no\n"
            "log_level = notice\n"
        )
        return head + "\n".join(self.pools())

    def pools(self) -> List[str]:
        """The pools' sections: one per listener (TCP, IPv6, Unix)."""
        return [
            self._pool(f"{self.pool_name}", f"127.0.0.1:{self.port}"),
            self._pool(f"{self.pool_name}6", f"[::1]:{self.port6}"),
            self._pool(f"{self.pool_name}-unix", str(self.socket_path)),
        ]

    def command(self) -> List[str]:
        command = [find_php_fpm(), "--nodaemonize", "--fpm-config", str(self.workdir / "php-fpm.conf")]
        # No php.ini: the pool must not depend on how the host's PHP is set up.
        command.insert(1, "-n")
        if os.geteuid() == 0:
            command.append("--allow-to-run-as-root")
        return command

    # --- life cycle ----------------------------------------------------------------

    def script(self, name: str) -> str:
        return str(self.docroot / name)

    def start(self, timeout: float = 15.0) -> FpmPool:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.docroot.mkdir(exist_ok=True)
        for name, text in SCRIPTS.items():
            (self.docroot / name).write_text(text)
        self.socket_dir.mkdir(mode=0o755, exist_ok=True)
        (self.workdir / "php-fpm.conf").write_text(self.config())
        self._ready_seen = (
            self.error_log.read_text().count("ready to handle connections") if self.error_log.exists() else 0
        )
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(self._ready, timeout, f"php-fpm ({self.log_tail()})")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        """FPM logs this once every listener is bound. Probing by connecting
        would move the very counters the tests read (an ondemand pool even
        counts max_children_reached for a bare connect)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"php-fpm exited with {self.process.returncode}: {self.log_tail()}")
        try:
            log = self.error_log.read_text()
        except FileNotFoundError:
            return False
        return log.count("ready to handle connections") > self._ready_seen

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " / ".join(self.error_log.read_text().strip().splitlines()[-lines:])
        except OSError:
            return "no log"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the master on the same addresses: a new pool start."""
        self.stop()
        self.start()

    def __enter__(self) -> FpmPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what checks point at --------------------------------------------------------

    def targets(self) -> Dict[str, List[str]]:
        """check_fastcgi target options for each listener."""
        return {
            "tcp": ["-H", "127.0.0.1", "-p", str(self.port)],
            "ipv6": ["-H", "::1", "-p", str(self.port6)],
            "unix": ["-s", str(self.socket_path)],
        }


class SlowRequest:
    """A request to slow.php that holds one worker for ``ms`` milliseconds.

    As a context manager it returns once PHP is running the script (the
    script touches a marker file), and joins the request on exit.
    """

    def __init__(self, pool: FpmPool, ms: int, address: Optional[object] = None) -> None:
        import fcgi_wire  # noqa: PLC0415 - tests/fpm.py also serves the demo, which needs no client

        self.pool = pool
        self.marker = pool.workdir / f"slow-{id(self):x}.started"
        self.query = f"ms={ms}&marker={self.marker}"
        self.params = {
            "SCRIPT_NAME": "/slow.php",
            "SCRIPT_FILENAME": pool.script("slow.php"),
            "REQUEST_METHOD": "GET",
            "QUERY_STRING": self.query,
        }
        self.address = address or fcgi_wire.TcpAddress("127.0.0.1", pool.port)
        self.timeout = ms / 1000 + 10
        self.response: Optional[object] = None
        self.error: Optional[BaseException] = None
        self._thread: Optional[object] = None

    def _run(self) -> None:
        import fcgi_wire  # noqa: PLC0415

        try:
            self.response = fcgi_wire.request(self.address, self.params, timeout=self.timeout)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def __enter__(self) -> SlowRequest:
        import threading  # noqa: PLC0415

        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        self._thread = thread
        wait_until(lambda: self.marker.exists() or self.error is not None, 10, "slow.php start")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(self.timeout)  # type: ignore[attr-defined]
