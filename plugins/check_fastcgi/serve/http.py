"""The sidecar's HTTP server.

Routes (GET or HEAD; other methods 405, other paths 404):

- ``/ping`` (alias ``/fcgi-ping``), ``/handshake``, ``/status``: run that
  mode's check against a configured target (``?target=NAME`` or
  ``/NAME/ping`` when there are several); 200 for OK and WARNING, 503 for
  CRITICAL and UNKNOWN; the body is the plugin's output, or its JSON
  document with ``Accept: application/json`` or ``?format=json``;
- ``/health``, ``/healthz``: the sidecar itself (never a FastCGI call) and
  the age and state of each target's last check;
- ``/metrics``: Prometheus exposition.

Nothing in a request chooses an address: a target is one of the configured
names. Slow or malformed clients are bounded: a whole request head must
arrive within REQUEST_TIMEOUT, head lines are capped by http.server, and at
most max_connections are served at once (more get 503 and are closed).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from .config import TargetConfig
from .probes import MODES, Prober

#: A request head must be complete within this many seconds.
REQUEST_TIMEOUT = 5.0
#: An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 15.0

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Deadline:
    """A request head's deadline, enforced on every read of the socket."""

    def __init__(self, connection: socket.socket, reader: Any) -> None:
        self.connection = connection
        self.reader = reader
        self.until = time.monotonic() + IDLE_TIMEOUT

    def start(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def _arm(self) -> None:
        left = self.until - time.monotonic()
        if left <= 0:
            raise TimeoutError("request head too slow")
        self.connection.settimeout(left)

    def readline(self, limit: int = -1) -> bytes:
        self._arm()
        line: bytes = self.reader.readline(limit)
        return line

    def peek(self, size: int = 1) -> bytes:
        self._arm()
        data: bytes = self.reader.peek(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)


class SidecarServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection bound, a drain, and errors as
    one log line instead of a traceback."""

    daemon_threads = False  # server_close() waits for in-flight probes
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], prober: Prober, metrics: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.prober = prober
        self.metrics = metrics
        self.started = time.monotonic()
        self.draining = threading.Event()
        self._slots = threading.BoundedSemaphore(prober.config.max_connections)
        self._idle: Dict[Any, bool] = {}
        self._idle_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys  # noqa: PLC0415

        exc = sys.exc_info()[1]
        if not isinstance(exc, (OSError, TimeoutError)):
            sys.stderr.write(f"<4>request from {client_address[0]} failed: {type(exc).__name__}: {exc}\n")

    def idle(self, handler: Any, idle: bool) -> None:
        with self._idle_lock:
            if idle:
                self._idle[handler] = True
            else:
                self._idle.pop(handler, None)

    def drain(self) -> None:
        """Stop accepting; close idle keep-alive connections so that only
        requests in progress remain (each bounded by -t)."""
        self.draining.set()
        self.shutdown()
        with self._idle_lock:
            idle = list(self._idle)
        for handler in idle:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    server: SidecarServer
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK hold every keep-alive response
    # back by ~40 ms.
    disable_nagle_algorithm = True
    server_version = f"check_fastcgi/{__version__}"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile = _Deadline(self.connection, self.rfile)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        reader: _Deadline = self.rfile  # type: ignore[assignment]
        reader.start(IDLE_TIMEOUT)
        self.server.idle(self, True)
        if self.server.draining.is_set():  # came in after drain() closed the idle ones
            self.server.idle(self, False)
            self.close_connection = True
            return
        try:
            # The first line may be long in coming (keep-alive); once it is
            # there, the rest of the head has REQUEST_TIMEOUT.
            first = reader.peek(1)
            if not first:
                self.close_connection = True
                return
        except (OSError, TimeoutError):
            self.close_connection = True
            return
        finally:
            self.server.idle(self, False)
        reader.start(REQUEST_TIMEOUT)
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
        if self.server.draining.is_set():
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes come every few seconds; state changes are what is logged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's errors (bad request line, head too large) as one
        line of text with a status line, never its HTML page, and always
        with a status line (it omits it for what it takes as HTTP/0.9)."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        status = HTTPStatus(code)
        self._reply(status, f"{status.value} {message or status.phrase}\n", head=self.command == "HEAD")

    def _not_allowed(self) -> None:
        self._reply(
            HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD\n", {"Allow": "GET, HEAD"}
        )

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        wants_json = query.get("format", [""])[-1] == "json" or "application/json" in self.headers.get(
            "Accept", ""
        )
        parts = [part for part in url.path.split("/") if part]
        if parts in (["health"], ["healthz"]):
            self._health(wants_json, head)
        elif parts == ["metrics"]:
            self._metrics(head)
        elif parts and parts[-1] in (*MODES, "fcgi-ping") and len(parts) <= 2:
            mode = "ping" if parts[-1] == "fcgi-ping" else parts[-1]
            name = parts[0] if len(parts) == 2 else query.get("target", [None])[-1]
            self._probe(mode, name, wants_json, head)
        else:
            self._reply(
                HTTPStatus.NOT_FOUND, "not found: /ping /handshake /status /health /metrics\n", head=head
            )

    def _probe(self, mode: str, name: Optional[str], wants_json: bool, head: bool) -> None:
        config = self.server.prober.config
        target: Optional[TargetConfig] = None
        if name is None and len(config.targets) == 1:
            target = config.targets[0]
        elif name is not None:
            target = config.target(name)
        if target is None:
            names = ", ".join(t.name for t in config.targets)
            why = f"no target {name!r}" if name is not None else "several targets: name one"
            text = f"{why} (?target=NAME or /NAME/{mode}); targets: {names}\n"
            self._reply(HTTPStatus.NOT_FOUND, text, head=head)
            return
        outcome = self.server.prober.probe(target, mode)
        status = HTTPStatus.OK if outcome.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        if wants_json:
            self._reply(status, outcome.document, content_type="application/json", head=head)
        else:
            self._reply(status, outcome.text, head=head)

    def _health(self, wants_json: bool, head: bool) -> None:
        now = time.monotonic()
        checks = [
            {
                "target": outcome.target,
                "mode": outcome.mode,
                "state": outcome.state,
                "age_seconds": round(now - outcome.at, 3),
            }
            for outcome in sorted(self.server.prober.latest().values(), key=lambda o: (o.target, o.mode))
        ]
        document = {"status": "ok", "uptime_seconds": round(now - self.server.started, 3), "checks": checks}
        if wants_json:
            self._reply(
                HTTPStatus.OK, json.dumps(document) + "\n", content_type="application/json", head=head
            )
            return
        lines = [f"ok: check_fastcgi serve, up {document['uptime_seconds']:.0f} s"]
        lines += [f"{c['target']} {c['mode']}: {c['state']}, {c['age_seconds']:.1f} s ago" for c in checks]
        self._reply(HTTPStatus.OK, "\n".join(lines) + "\n", head=head)

    def _metrics(self, head: bool) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        body = generate_latest(self.server.metrics).decode()
        self._reply(HTTPStatus.OK, body, content_type=CONTENT_TYPE_LATEST, head=head)

    def _reply(
        self,
        status: HTTPStatus,
        body: str,
        extra: Optional[Dict[str, str]] = None,
        *,
        content_type: str = "text/plain; charset=utf-8",
        head: bool = False,
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.server.draining.is_set():
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(data)
