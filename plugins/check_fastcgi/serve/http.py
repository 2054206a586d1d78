"""The sidecar's HTTP server: it moves bytes, holds the limits on clients,
and asks ``routes.route`` what to answer (the routes are listed there);
SidecarServer is the ``routes.App`` that routing sees.

With ``--web.config.file`` (see web), every endpoint is behind it: TLS
(the handshake runs in the connection's thread, bounded by
REQUEST_TIMEOUT, while the connection only waits and can be evicted) and
basic auth (before any route, so a 404 tells nobody what exists).

Nothing in a request chooses an address: a target is one of the configured
names. Hostile clients are bounded:

- a whole request head must arrive within REQUEST_TIMEOUT, an idle
  keep-alive connection is closed after IDLE_TIMEOUT, head lines are capped
  by http.server;
- at most max_connections are served at once, and the listen backlog holds
  as many. When every slot is taken, a new connection takes the slot of the
  oldest one that only waits (idle between requests, or still sending a
  head), which is closed: connections that sit on their slots cannot deny
  /healthz to others. A connection running a request is never closed; when
  all of them are, the new one gets 503;
- no request body is read, so none is accepted: a Content-Length other than
  0, a Transfer-Encoding or an Expect header is answered 400 and the
  connection closed (else the body would be parsed as the next request);
- a request line that is not ``METHOD /PATH HTTP/1.x`` in printable ASCII
  is answered 400;
- what reaches stderr is one printable line (check_fastcgi.text.printable).

Threads: the ``http`` thread runs serve_forever (accepting, taking a slot or
evicting, starting a thread per connection); one thread per connection
reads its requests and runs them (probes run there; the Prober has its own
locks); the main thread waits for a signal and calls drain(). One lock,
SidecarServer._lock, guards SidecarServer._connections: the connections
holding a slot, in the order they came, each waiting or running. A socket
is shut down by another thread (eviction, drain) only under that lock, and
its own thread takes it off the table under the lock before closing it, so
a shutdown never reaches a descriptor that was closed and reused.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Sequence, Tuple

from .. import __version__
from ..text import printable
from .config import TargetConfig
from .exporter import Exporter, scrape_deadline
from .probes import Outcome, Prober
from .routes import route
from .web import WebConfigSource

#: A request head must be complete within this many seconds.
REQUEST_TIMEOUT = 5.0
#: An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 15.0

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#: METHOD TARGET VERSION: printable ASCII, one space between (RFC 9112).
_REQUEST_LINE = re.compile(r"[!-~]+ ([!-~]+) [!-~]+\Z")


def _shut(connection: socket.socket) -> None:
    """Shut a connection down from another thread. For a TLS one this is
    the plain socket's shutdown: SSLSocket.shutdown() would also drop its
    TLS state under the feet of the thread reading it."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(connection, socket.SHUT_RDWR)


def line_problem(line: str) -> Optional[str]:
    """Why a request line is refused, or None. http.server lets through a
    target that urlsplit then raises on ("http://[x"), control characters,
    and HTTP/0.9 (answered with no status line)."""
    match = _REQUEST_LINE.match(line)
    if match is None:
        return "a request line is METHOD /PATH HTTP/1.1, in printable ASCII"
    if not match.group(1).startswith("/"):
        return "the request target must be a path, starting with /"
    return None


class _TimedReader:
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
    """ThreadingHTTPServer with a connection bound that waiting connections
    cannot hold, a drain, and errors as one log line instead of a
    traceback."""

    daemon_threads = False  # server_close() waits for in-flight probes
    block_on_close = True
    allow_reuse_address = True

    def __init__(
        self,
        address: Tuple[str, int],
        prober: Prober,
        exporter: Exporter,
        web: Optional[WebConfigSource] = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # Read by server_activate() when it listens: socketserver's 5 drops
        # the SYNs of a burst while the accept loop is busy.
        self.request_queue_size = max(prober.config.max_connections, 5)
        self.prober = prober
        self.exporter = exporter
        self.web = web
        self.started = time.monotonic()
        #: The Date header of the current second, (second, text): formatting
        #: it costs every response more than the rest of its head.
        self.date: Tuple[int, str] = (0, "")
        self.draining = threading.Event()
        self._lock = threading.Lock()
        #: Connections holding a slot, oldest first: True while it waits
        #: (for or within a request head), False while it runs a request.
        self._connections: Dict[socket.socket, bool] = {}
        super().__init__(address, Handler)

    # --- routes.App: what routing asks of the running sidecar ---------------------

    @property
    def targets(self) -> Sequence[TargetConfig]:
        return self.prober.config.targets

    def probe(self, target: TargetConfig, mode: str) -> Outcome:
        return self.prober.probe(target, mode)

    def latest(self) -> Dict[Tuple[str, str], Outcome]:
        return self.prober.latest()

    def uptime(self, now: float) -> float:
        return now - self.started

    def metrics(self, scrape_timeout: Optional[str]) -> Tuple[str, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        deadline = scrape_deadline(scrape_timeout, self.prober.config.scrape_timeout, time.monotonic())
        return generate_latest(self.exporter.registry(deadline)).decode(), CONTENT_TYPE_LATEST

    # --- connections -------------------------------------------------------------

    def get_request(self) -> Tuple[socket.socket, Any]:
        """Accept; with TLS, wrap the socket without a handshake (that runs
        in the connection's own thread). A web configuration that became
        unusable refuses the connection."""
        connection, client_address = self.socket.accept()
        if self.web is None:
            return connection, client_address
        config = self.web.current()
        if config is None:
            connection.close()
            raise OSError("--web.config.file unusable: connection refused")
        if config.tls is None:
            return connection, client_address
        try:
            wrapped = config.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            connection.close()
            raise OSError("TLS: cannot wrap the connection") from None
        return wrapped, client_address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = len(self._connections) >= self.prober.config.max_connections
            if not full or self._evict_oldest_waiting():
                self._connections[request] = True
                full = False
        if full:  # every slot runs a request
            if not isinstance(request, ssl.SSLSocket):  # a TLS answer needs a handshake: not in this thread
                with contextlib.suppress(OSError):
                    request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def _evict_oldest_waiting(self) -> bool:
        """Close the oldest connection that only waits, freeing its slot
        (under the lock). Its thread wakes to a closed socket and ends."""
        oldest = next((conn for conn, waiting in self._connections.items() if waiting), None)
        if oldest is None:
            return False
        del self._connections[oldest]
        _shut(oldest)
        return True

    def shutdown_request(self, request: Any) -> None:
        with self._lock:  # the slot is free, and no other thread shuts it down any more
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def waiting(self, connection: socket.socket) -> bool:
        """The connection waits for its next request; False when it must
        close instead (it was evicted, or the server drains)."""
        return self._mark(connection, True)

    def running(self, connection: socket.socket) -> bool:
        """The connection's request head is in: from now on it is never
        evicted. False when it was evicted while the head came in."""
        return self._mark(connection, False)

    def _mark(self, connection: socket.socket, waiting: bool) -> bool:
        with self._lock:
            # A request whose head is in is answered even as the server
            # drains; waiting for another is what draining ends.
            if connection not in self._connections or (waiting and self.draining.is_set()):
                return False
            self._connections[connection] = waiting
            return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, (OSError, TimeoutError)):
            # The text may hold what a client or a server sent.
            what = printable(f"request from {client_address[0]} failed: {type(exc).__name__}: {exc}", 1000)
            sys.stderr.write(f"<4>{what}\n")
            sys.stderr.flush()

    def drain(self) -> None:
        """Stop accepting; close the connections that only wait, so that
        only requests in progress remain (each bounded by -t)."""
        self.draining.set()
        self.shutdown()
        with self._lock:
            for connection, waiting in self._connections.items():
                if waiting:
                    _shut(connection)


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
        if isinstance(self.request, ssl.SSLSocket):
            self._handshake(self.request)
        super().setup()
        self.rfile = _TimedReader(self.connection, self.rfile)  # type: ignore[assignment]

    def _handshake(self, connection: ssl.SSLSocket) -> None:
        """The TLS handshake, all of it within REQUEST_TIMEOUT (CPython's
        ssl keeps one deadline for the whole handshake); the connection
        only waits meanwhile, so a client that never completes one can be
        evicted. A failure raises OSError: the connection closes, unlogged."""
        connection.settimeout(REQUEST_TIMEOUT)
        connection.do_handshake()
        config = self.server.web.current() if self.server.web is not None else None
        if config is not None and not config.allows_peer(connection):
            raise ConnectionRefusedError("the client certificate holds none of client_allowed_sans")

    def handle_one_request(self) -> None:
        reader: _TimedReader = self.rfile  # type: ignore[assignment]
        reader.start(IDLE_TIMEOUT)
        if not self.server.waiting(self.connection):
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
        reader.start(REQUEST_TIMEOUT)
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
        if self.server.draining.is_set():
            self.close_connection = True

    def parse_request(self) -> bool:
        """http.server's parsing, with the request line and the absence of
        a body checked; then the connection runs its request."""
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        # What send_error reads, before http.server sets it.
        self.command, self.request_version, self.requestline = None, "HTTP/1.0", line  # type: ignore[assignment]
        problem = line_problem(line)
        if problem is None:
            if not super().parse_request():
                return False
            problem = self._body_problem()
        if problem is not None:
            self.send_error(HTTPStatus.BAD_REQUEST, problem)
            return False
        if not self.server.running(self.connection):
            self.close_connection = True
            return False
        return self._authorized()

    def _authorized(self) -> bool:
        """Basic auth, for every route and method, when the web
        configuration has users; else answered 401 (or 503)."""
        web = self.server.web
        if web is None:
            return True
        config = web.current()
        if config is None:
            self.close_connection = True
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "503 --web.config.file unusable\n", head=self._head)
            return False
        if not config.users:
            return True
        verdict = web.auth.allowed(config.users, self.headers.get("Authorization"), REQUEST_TIMEOUT)
        if verdict is None:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "503 too many logins at once\n", head=self._head)
            return False
        if not verdict:
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                "401 Unauthorized\n",
                {"WWW-Authenticate": "Basic"},
                head=self._head,
            )
            return False
        return True

    @property
    def _head(self) -> bool:
        return self.command == "HEAD"

    def _body_problem(self) -> Optional[str]:
        """No body is read: one would be parsed as the next request, and a
        proxy that reuses the connection would get answers out of step."""
        if any(value.strip() != "0" for value in self.headers.get_all("Content-Length", [])):
            return "no request body is accepted: Content-Length must be 0"
        if "Transfer-Encoding" in self.headers:
            return "no request body is accepted: no Transfer-Encoding"
        if "Expect" in self.headers:
            return "no request body is accepted: no Expect"
        return None

    def date_time_string(self, timestamp: Optional[float] = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        cached = self.server.date  # one tuple, read and replaced whole: no lock needed
        if cached[0] != second:
            cached = self.server.date = (second, super().date_time_string(second))
        return cached[1]

    def handle_expect_100(self) -> bool:
        # http.server would send 100 Continue, inviting the body that
        # parse_request refuses next.
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes come every few seconds; state changes are what is logged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # HEAD, POST, ...: routing answers each
            return self.do_GET
        raise AttributeError(name)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's errors (bad request line, head too large) as one
        line of text with a status line, never its HTML page, and always
        with a status line (it omits it for what it takes as HTTP/0.9)."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        status = HTTPStatus(code)
        text = printable(message or status.phrase, 200)  # http.server's may quote the request
        self._reply(status, f"{status.value} {text}\n", head=self.command == "HEAD")

    def do_GET(self) -> None:
        """Every method comes here (see __getattr__): routes.route decides."""
        reply = route(self.command, self.path, self.headers, self.server, time.monotonic())
        self._reply(
            HTTPStatus(reply.status),
            reply.body,
            dict(reply.headers),
            content_type=reply.content_type,
            head=self.command == "HEAD",
        )

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
        if self.request_version == "HTTP/0.9":  # "GET / HTTP/0.9": still a status line and headers
            self.request_version = "HTTP/1.0"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        web_headers = self.server.web.headers() if self.server.web is not None else {}
        for name, value in {**web_headers, **(extra or {})}.items():
            self.send_header(name, value)
        if self.close_connection or self.server.draining.is_set():
            self.send_header("Connection", "close")
        # Head and body in one write (end_headers() would send the head on
        # its own): one system call, one packet, and one wait for the GIL
        # less per response, which 8 busy connections on 2 cores feel.
        self._headers_buffer.append(b"\r\n")
        if not head:
            self._headers_buffer.append(data)
        self.flush_headers()
