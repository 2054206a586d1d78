"""PHP-FPM configured as distributions and images lay it out, under a
temporary root, each layout run by a real php-fpm master."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

from tests.fpm import find_php_fpm, free_port, wait_until

GLOBAL = "[global]\npid = {run}/{name}.pid\nerror_log = {run}/{name}.log\ndaemonize = no\n"


def pool(name: str, listen: str, *, status: bool, ping: bool, children: int = 1, pm: str = "static") -> str:
    lines = [f"[{name}]", f"listen = {listen}", f"pm = {pm}", f"pm.max_children = {children}"]
    if pm == "dynamic":
        lines += ["pm.start_servers = 1", "pm.min_spare_servers = 1", "pm.max_spare_servers = 1"]
    if status:
        lines.append("pm.status_path = /status")
    if ping:
        lines.append('ping.path = "/ping"   ; quoted, with a comment')
    return "\n".join(lines) + "\n"


def _ready(log: Path) -> bool:
    return log.exists() and "ready to handle connections" in log.read_text()


class Layouts:
    """The layouts under ``root``, and their masters once started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = root / "run"
        self.masters: List[subprocess.Popen[bytes]] = []
        self.configs: Dict[str, Path] = {}
        self.prefixes: Dict[str, Optional[Path]] = {}
        self.ports = {name: free_port() for name in ("api", "legacy6", "image")}
        self.ports["legacy6"] = free_port("::1")
        # Unix socket paths are limited to 107 bytes: keep the sockets short.
        self.sockets = Path(os.environ.get("TMPDIR", "/tmp")) / f"lay-{os.getpid()}-{id(self):x}"

    def write(self) -> Layouts:
        self.run.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(mode=0o755, exist_ok=True)
        run = self.run
        # Debian: one master per PHP version, pools in pool.d/.
        for version, pools in (
            (
                "8.2",
                {
                    "www.conf": pool(
                        "www", f"{self.sockets}/php8.2-$pool.sock", status=True, ping=True, children=2
                    ),
                    "api.conf": pool("api", f"127.0.0.1:{self.ports['api']}", status=False, ping=True),
                },
            ),
            (
                "8.1",
                {"legacy.conf": pool("legacy", f"[::1]:{self.ports['legacy6']}", status=True, ping=False)},
            ),
        ):
            base = self.root / "etc" / "php" / version / "fpm"
            (base / "pool.d").mkdir(parents=True)
            name = f"debian{version}"
            (base / "php-fpm.conf").write_text(
                GLOBAL.format(run=run, name=name) + f"include={base}/pool.d/*.conf\n"
            )
            for file, text in pools.items():
                (base / "pool.d" / file).write_text(text)
            self.configs[name] = base / "php-fpm.conf"
            self.prefixes[name] = None
        # The official PHP images: a relative include, resolved against the
        # prefix; zz-docker.conf re-opens [www] to listen on a bare port.
        local = self.root / "usr" / "local"
        (local / "etc" / "php-fpm.d").mkdir(parents=True)
        (local / "etc" / "php-fpm.conf").write_text(
            GLOBAL.format(run=run, name="image") + "include=etc/php-fpm.d/*.conf\n"
        )
        (local / "etc" / "php-fpm.d" / "www.conf").write_text(
            pool("www", "127.0.0.1:1", status=True, ping=True, pm="dynamic")
        )
        (local / "etc" / "php-fpm.d" / "zz-docker.conf").write_text(
            f"[www]\nlisten = {self.ports['image']}\n"
        )
        self.configs["image"] = local / "etc" / "php-fpm.conf"
        self.prefixes["image"] = local
        # RHEL and Fedora: /etc/php-fpm.conf and /etc/php-fpm.d/.
        (self.root / "etc" / "php-fpm.d").mkdir(parents=True)
        (self.root / "etc" / "php-fpm.conf").write_text(
            GLOBAL.format(run=run, name="rhel") + f"include={self.root}/etc/php-fpm.d/*.conf\n"
        )
        (self.root / "etc" / "php-fpm.d" / "www.conf").write_text(
            pool("www", f"{self.sockets}/rhel-www.sock", status=True, ping=True)
        )
        self.configs["rhel"] = self.root / "etc" / "php-fpm.conf"
        self.prefixes["rhel"] = None
        return self

    def start(self) -> Layouts:
        binary = find_php_fpm()
        for name, config in self.configs.items():
            command = [binary, "-n", "--nodaemonize", "--fpm-config", str(config)]
            prefix = self.prefixes[name]
            if prefix is not None:
                command += ["--prefix", str(prefix)]
            if os.geteuid() == 0:
                command.append("--allow-to-run-as-root")
            self.masters.append(
                subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            wait_until(lambda log=self.run / f"{name}.log": _ready(log), 15, f"php-fpm {name}")
        return self

    def stop(self) -> None:
        for master in self.masters:
            if master.poll() is None:
                master.send_signal(signal.SIGTERM)
        for master in self.masters:
            try:
                master.wait(timeout=10)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
        shutil.rmtree(self.sockets, ignore_errors=True)
