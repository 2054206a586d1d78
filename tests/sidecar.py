"""A running ``check_fastcgi serve`` for the tests: started as a process on a
free loopback port, ready when /health answers, stopped with SIGTERM. With
``tls`` (a client SSLContext) it speaks HTTPS, with ``auth`` (user,
password) it sends basic auth with every request."""

from __future__ import annotations

import base64
import http.client
import signal
import ssl
import subprocess
from typing import Dict, List, Optional, Tuple

from tests.conftest import CHECK, STATE_HOME
from tests.fpm import free_port, wait_until


class Sidecar:
    def __init__(
        self,
        *args: str,
        env: Optional[Dict[str, str]] = None,
        port: Optional[int] = None,
        tls: Optional[ssl.SSLContext] = None,
        auth: Optional[Tuple[str, str]] = None,
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.auth = auth
        listen = [] if env and "SERVER" in env else ["--listen", f"127.0.0.1:{self.port}"]
        self.command = [CHECK, "serve", *listen, *args]
        self.env = {
            "PATH": "/usr/bin:/bin",
            "XDG_STATE_HOME": STATE_HOME["path"] or "/nonexistent",
            **(env or {}),
        }
        self.process: Optional[subprocess.Popen[str]] = None
        self.stderr = ""

    def start(self) -> Sidecar:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        wait_until(self._ready, 15, f"check_fastcgi serve on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"serve exited with {self.process.returncode}: {self.process.stderr.read()}")  # type: ignore[union-attr]
        try:
            return self.get("/health")[0] == 200
        except OSError:
            return False

    def get(
        self, path: str, headers: Optional[Dict[str, str]] = None, method: str = "GET", timeout: float = 15
    ) -> Tuple[int, str, Dict[str, str]]:
        connection = self.connection(timeout)
        headers = dict(headers or {})
        if self.auth is not None and "Authorization" not in headers:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(), {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()

    def connection(self, timeout: float = 15) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
        return self.process.returncode

    def log_lines(self) -> List[str]:
        return [line for line in self.stderr.splitlines() if line]

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
