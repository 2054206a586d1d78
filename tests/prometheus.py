"""A real Prometheus (Debian's) for the tests: started on a free loopback
port from a config the test writes, its data in the test's directory,
asked through its HTTP API, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, List

from tests.fpm import free_port, wait_until


class Prometheus:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def query(self, promql: str) -> List[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?query={urllib.parse.quote(promql)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            result: List[dict] = json.load(response)["data"]["result"]
        return result

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        """Poll ``done`` (which may query) until true; fail if Prometheus exits."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                return done()
            except OSError:
                return False

        wait_until(ready, 60, what, interval=0.2)


@contextlib.contextmanager
def running(config: Path, workdir: Path) -> Iterator[Prometheus]:
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield Prometheus(process, port, log)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
