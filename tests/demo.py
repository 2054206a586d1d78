"""`make demo`: a throwaway php-fpm pool on loopback and every mode against it.

Prints each command as an operator would type it, then what it printed and
its exit code; stops the pool afterwards, whatever happened.
"""

from __future__ import annotations

import http.client
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tests.fpm import FpmPool, free_port, wait_until

CHECK = str(Path(sys.executable).parent / "check_fastcgi")


def commands(pool: FpmPool) -> List[List[str]]:
    tcp = ["-H", "127.0.0.1", "-p", str(pool.port)]
    ipv6 = ["-H", "::1", "-p", str(pool.port6)]
    unix = ["-s", str(pool.socket_path)]
    health = ["--path", "/health.php", "--script-filename", pool.script("health.php")]
    return [
        ["handshake", *tcp],
        ["handshake", *ipv6, "-w", "0.5", "-c", "1"],
        ["ping", *tcp],
        ["ping", *unix, "-w", "0.5", "-c", "2"],
        ["ping", *tcp, *health, "--query", "from=demo", "-e", "healthy"],
        ["status", *tcp],
        ["status", *tcp, "-w", "active_percent=80", "-c", "listen_queue=10"],
        ["status", *ipv6, "--full", "-c", "longest_request=30", "-v"],
    ]


def sidecar(pool: FpmPool, env: Dict[str, str]) -> None:
    """The sidecar and exporter: a probe and a scrape, as an HTTP prober
    and Prometheus would send them."""
    port = free_port()
    args = ["serve", "--listen", f"127.0.0.1:{port}", "--target", f"www=127.0.0.1:{pool.port}"]
    print("$ check_fastcgi " + " ".join(args) + " &")
    server = subprocess.Popen([CHECK, *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: _get(port, "/healthz") is not None, 15, "check_fastcgi serve")
        for path in ("/ping", "/metrics"):
            print(f"$ curl -s http://127.0.0.1:{port}{path}")
            answer = _get(port, path) or (0, "")
            lines = answer[1].splitlines()
            shown = [line for line in lines if not line.startswith("#")][:6] if path == "/metrics" else lines
            print("\n".join(shown) + ("\n..." if len(shown) < len(lines) else ""))
            print(f"(HTTP {answer[0]})\n")
    finally:
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=15)
    print(log + f"(sidecar exit {server.returncode})\n")


def _get(port: int, path: str) -> Optional[Tuple[int, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return None
    finally:
        connection.close()


def main() -> int:
    worst = 0
    with tempfile.TemporaryDirectory(prefix="check_fastcgi-demo-") as workdir, FpmPool(Path(workdir)) as pool:
        print(f"php-fpm pool up: 127.0.0.1:{pool.port}, [::1]:{pool.port6}, {pool.socket_path}\n")
        # Rates keep their state here, not in the caller's home.
        env = {**os.environ, "XDG_STATE_HOME": workdir}
        for args in commands(pool):
            print("$ check_fastcgi " + " ".join(shlex.quote(a) for a in args))
            done = subprocess.run([CHECK, *args], capture_output=True, text=True, check=False, env=env)
            print(done.stdout + done.stderr, end="")
            print(f"(exit {done.returncode})\n")
            worst = max(worst, done.returncode)
        sidecar(pool, env)
    print("pool stopped")
    return worst


if __name__ == "__main__":
    sys.exit(main())
