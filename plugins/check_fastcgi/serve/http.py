"""The sidecar's HTTP server: it moves bytes, holds the limits on clients,
and asks ``routes`` what to answer (the routes are listed there);
SidecarServer is the ``routes.App`` that routing sees.

One event loop (selectors: epoll on Linux) reads and writes every
connection; what has to wait (a check, a scrape, a bcrypt comparison)
runs in a worker thread and hands its answer back to the loop. So a
request that needs no FastCGI (/healthz, an error) costs no thread
handoff at all, and requests that ask for the same check while it runs
(``routes.Probe``: same target and mode) all wait for that one check's
outcome, without a thread each: one worker runs ``Prober.probe`` (whose
single flight and per-target bound hold as for any caller), and the loop
answers them all when it is done. A request that arrives after the
outcome was made waits for a check of its own.

With ``--web.config.file`` (see web), every endpoint is behind it: TLS
(the handshake runs in the loop, without blocking, within
REQUEST_TIMEOUT, while the connection only waits and can be evicted) and
basic auth (before any route, so a 404 tells nobody what exists; checked
in a worker, since a bcrypt comparison takes tens of milliseconds).

Nothing in a request chooses an address: a target is one of the configured
names. Hostile clients are bounded:

- a whole request head must arrive within REQUEST_TIMEOUT, an idle
  keep-alive connection is closed after IDLE_TIMEOUT, and an answer must
  be taken within REQUEST_TIMEOUT; a head line is 64 KiB at most (a longer
  request line is answered 414, a longer header line 431) and a head has
  100 header lines at most (431), as in http.server;
- at most max_connections are served at once, and the listen backlog holds
  as many. When every slot is taken, a new connection takes the slot of the
  oldest one that only waits (in a TLS handshake, idle between requests, or
  still sending a head), which is closed: connections that sit on their
  slots cannot deny /healthz to others. A connection running a request (or
  writing its answer) is never closed; when all of them are, the new one
  gets 503;
- no request body is read, so none is accepted: a Content-Length other than
  0, a Transfer-Encoding or an Expect header is answered 400 and the
  connection closed (else the body would be parsed as the next request);
- a request line that is not ``METHOD /PATH HTTP/1.1`` in printable ASCII
  (any version below 2.0; 2.0 and later: 505), and a header line that is
  not ``Name: value`` (a token, no space before the colon, no line
  folding, no control character), are answered 400: a header that one
  parser would skip and another read is no header here;
- while a request runs, its connection is not read (what a client sends
  meanwhile waits in the kernel);
- what reaches stderr is one printable line (check_fastcgi.text.printable).

The head is read here and parsed by ``head``, not by http.server (whose
header parser cost more than all the rest of a /healthz).

Threads: the ``http`` thread runs serve_forever, the loop: it accepts,
takes a slot or evicts, reads, parses, routes (``routes.plan``), answers
what needs no waiting, and writes every answer. Workers (``request_N``, a
pool of max_connections threads, as every running request holds a slot)
run checks, scrapes and basic auth; each ends by posting its answer to
the loop (a queue, and a byte on a socketpair that wakes it). The main
thread waits for a signal, then calls drain() and server_close(), which
post to the loop and wait for it. Only the loop touches the connections,
their table and their sockets: no lock guards them, and no socket is
closed under the feet of a thread that uses it.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import math
import selectors
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from fcgi_wire._values import Value

from .. import __version__
from ..text import printable
from .config import TargetConfig
from .exporter import Exporter, scrape_deadline
from .head import HeadScanner, Refused, Request, body_problem, parse_head
from .probes import Outcome, Prober
from .routes import Probe, Reply, plan, route
from .web import WebConfig, WebConfigSource

#: A request head must be complete within this many seconds (a TLS
#: handshake too), and an answer taken within as many.
REQUEST_TIMEOUT = 5.0
#: An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 15.0
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_SERVER = f"check_fastcgi/{__version__}"
#: What one recv() asks for: a head, or several pipelined ones.
_CHUNK = 65536
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


#: What a connection does, as the loop sees it. The first two only wait:
#: those are evicted when a new connection needs a slot, and drained.
_HANDSHAKE = "handshake"  # TLS, before the first request
_WAITING = "waiting"  # for a request head, or within one
_RUNNING = "running"  # a request: answered by the loop or a worker
_WRITING = "writing"  # an answer that the socket did not take at once
_CLOSED = "closed"
_ONLY_WAITING = (_HANDSHAKE, _WAITING)
#: Selector keys that are no connection.
_LISTENER, _WAKE = "listener", "wake"


class _Connection:
    """One client connection; only the loop touches it."""

    __slots__ = (
        "address",
        "arrived",
        "buffer",
        "deadline",
        "events",
        "keep",
        "out",
        "scanner",
        "sock",
        "state",
        "tls",
    )

    def __init__(self, sock: socket.socket, address: Any, tls: bool) -> None:
        self.sock = sock
        self.address = address
        self.tls = tls
        self.state = _HANDSHAKE if tls else _WAITING
        #: Bytes received and not parsed yet: the start of the next head.
        self.buffer: Union[bytes, bytearray] = b""
        self.scanner = HeadScanner()
        #: When the connection is closed unless it moves on (time.monotonic()).
        self.deadline = math.inf
        #: The selector events watched (0: not registered).
        self.events = 0
        #: The connection stays open after the answer being written.
        self.keep = False
        self.out = memoryview(b"")
        #: When the running request's head was complete.
        self.arrived = 0.0


class TransportLimits(Value):
    """What the transport holds every client to, in one place (the head's
    own limits, line length and header count, are ``head``'s)."""

    #: Connections served at once; a new one evicts the oldest that only
    #: waits, else gets 503. Also the listen backlog and the workers.
    max_connections: int = 64
    #: A request head (a TLS handshake too) must be complete, and an
    #: answer taken, within this many seconds.
    request_timeout: float = REQUEST_TIMEOUT
    #: An idle keep-alive connection is closed after this many seconds.
    idle_timeout: float = IDLE_TIMEOUT


class SidecarServer:
    """The loop (serve_forever) and its workers, the connection bound that
    waiting connections cannot hold, and a drain."""

    def __init__(
        self,
        address: Tuple[str, int],
        prober: Prober,
        exporter: Exporter,
        web: Optional[WebConfigSource] = None,
        limits: Optional[TransportLimits] = None,
    ) -> None:
        self.limits = limits or TransportLimits(max_connections=prober.config.max_connections)
        self.prober = prober
        self.exporter = exporter
        self.web = web
        self.started = time.monotonic()
        #: The Date header of the current second, (second, text): formatting
        #: it costs every response more than the rest of its head.
        self.date: Tuple[int, str] = (0, "")
        self.draining = threading.Event()
        listener = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            # A backlog of max_connections: socketserver's 5 dropped the
            # SYNs of a burst while the loop was busy.
            listener.listen(max(self.limits.max_connections, 5))
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self.socket = listener
        self.server_address: Tuple[Any, ...] = listener.getsockname()
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, _READ, _LISTENER)
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector.register(self._wake_in, _READ, _WAKE)
        #: What other threads ask of the loop, in order.
        self._posted: Deque[Callable[[], None]] = collections.deque()
        #: Connections holding a slot, oldest first (a dict as an ordered set).
        self._connections: Dict[_Connection, None] = {}
        #: Checks running, by (target, mode), and the requests waiting for each.
        self._probes: Dict[Tuple[str, str], List[Tuple[_Connection, Request, Probe]]] = {}
        self._workers = ThreadPoolExecutor(
            max_workers=self.limits.max_connections, thread_name_prefix="request"
        )
        #: The fixed parts of answers' heads, by shape (see _shape), and
        #: the web headers they hold.
        self._shapes: Dict[
            Tuple[int, str, Tuple[Tuple[str, str], ...], bool, bool], Tuple[str, str, str]
        ] = {}
        self._shapes_web: Optional[Dict[str, str]] = None
        #: The earliest deadline of a connection, or later: when to look.
        self._next_check = math.inf
        self._listening = True
        self._closing = False  # server_close(): end once no request is left
        self._serving = False
        self._stopped = threading.Event()

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

    # --- from other threads ------------------------------------------------------

    def serve_forever(self) -> None:
        """Run the loop, until server_close() finds no request left."""
        self._serving = True
        try:
            while not (self._closing and not self._connections):
                now = time.monotonic()
                if now >= self._next_check:
                    self._expire(now)
                timeout = None if self._next_check == math.inf else max(self._next_check - now, 0.0)
                for key, _ in self._selector.select(timeout):
                    what = key.data
                    try:
                        if what is _LISTENER:
                            self._accept()
                        elif what is _WAKE:
                            self._run_posted()
                        else:
                            self._ready(what)
                    except Exception:  # a bug of ours must not end the loop
                        self._log_error("the loop")
        finally:
            self._stopped.set()

    def drain(self) -> None:
        """Stop accepting; close the connections that only wait, so that
        only requests in progress remain (each bounded by -t)."""
        self.draining.set()
        self._in_loop(self._stop_accepting)

    def server_close(self) -> None:
        """Wait for the requests in progress (each bounded by -t), end the
        loop and the workers, close every socket."""
        self.draining.set()
        self._in_loop(self._close_when_idle)
        if self._serving:
            self._stopped.wait()
        self._workers.shutdown(wait=True)
        for connection in list(self._connections):
            self._close(connection)
        self._selector.close()
        for sock in (self.socket, self._wake_in, self._wake_out):
            sock.close()

    def _in_loop(self, work: Callable[[], None]) -> None:
        """Run ``work`` in the loop and wait for it (here, when no loop runs)."""
        if not self._serving or self._stopped.is_set():
            work()
            return
        done = threading.Event()

        def then() -> None:
            try:
                work()
            finally:
                done.set()

        self._post(then)
        while not done.wait(0.5) and not self._stopped.is_set():
            pass

    def _post(self, work: Callable[[], None]) -> None:
        """Have the loop run ``work`` (from any thread)."""
        self._posted.append(work)
        with contextlib.suppress(OSError):  # full: the loop is woken already; closed: no loop
            self._wake_out.send(b"\0")

    # --- the loop ----------------------------------------------------------------

    def _run_posted(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:  # BlockingIOError: all read
            pass
        while self._posted:
            work = self._posted.popleft()
            try:
                work()
            except Exception:  # a bug of ours must not end the loop
                self._log_error("the loop")

    def _stop_accepting(self) -> None:
        if self._listening:
            self._listening = False
            self._selector.unregister(self.socket)
        for connection in list(self._connections):
            if connection.state in _ONLY_WAITING:
                self._close(connection)

    def _close_when_idle(self) -> None:
        self._stop_accepting()
        self._closing = True

    def _accept(self) -> None:
        for _ in range(self.limits.max_connections):  # then the others have their turn
            try:
                sock, address = self.socket.accept()
            except OSError:  # none left (EAGAIN), or none possible now (EMFILE): the next wake-up
                return
            try:
                self._admit(sock, address)
            except Exception:
                sock.close()
                self._log_error(f"connection from {address[0]}")

    def _admit(self, sock: socket.socket, address: Any) -> None:
        """A new connection: a slot (the oldest waiting one's, if need be)
        or 503; with TLS, the handshake starts."""
        sock.setblocking(False)
        config: Optional[WebConfig] = None
        if self.web is not None:
            config = self.web.current()
            if config is None:  # unusable: refused
                sock.close()
                return
        tls = config.tls if config is not None else None
        if len(self._connections) >= self.limits.max_connections and not self._evict_oldest_waiting():
            if tls is None:  # a TLS answer needs a handshake: none for it
                with contextlib.suppress(OSError):
                    sock.send(_BUSY)
            sock.close()
            return
        if sock.family != socket.AF_UNIX:
            # Without TCP_NODELAY, Nagle's algorithm and the client's
            # delayed ACK can hold a keep-alive answer back by ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                sock.close()
                return
        connection = _Connection(sock, address, tls is not None)
        self._connections[connection] = None
        if connection.tls:
            self._set_deadline(connection, time.monotonic() + self.limits.request_timeout)
            self._handshake(connection)
        else:
            self._wait_for_request(connection)

    def _evict_oldest_waiting(self) -> bool:
        """Close the oldest connection that only waits, freeing its slot."""
        oldest = next((conn for conn in self._connections if conn.state in _ONLY_WAITING), None)
        if oldest is None:
            return False
        self._close(oldest)
        return True

    def _ready(self, connection: _Connection) -> None:
        state = connection.state
        try:
            if state is _WAITING:
                self._read(connection)
            elif state is _WRITING:
                self._write(connection)
                if connection.state is _WAITING:
                    self._advance(connection)  # pipelined requests, in already
            elif state is _HANDSHAKE:
                self._handshake(connection)
            elif state is _RUNNING:
                self._watch(connection, 0)  # what comes meanwhile waits for the answer
        except Exception:
            self._failed(connection)

    def _handshake(self, connection: _Connection) -> None:
        """The TLS handshake, as far as the client's bytes let it go. A
        failure closes the connection, unlogged."""
        sock: ssl.SSLSocket = connection.sock  # type: ignore[assignment]
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(connection, _READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(connection, _WRITE)
            return
        except (OSError, ValueError):
            self._close(connection)
            return
        config = self.web.current() if self.web is not None else None
        if config is not None and not config.allows_peer(sock):  # none of client_allowed_sans
            self._close(connection)
            return
        self._wait_for_request(connection)
        self._read(connection)  # the request may have come with the handshake's end

    def _wait_for_request(self, connection: _Connection) -> None:
        """The connection waits for its next request: IDLE_TIMEOUT for its
        first byte; REQUEST_TIMEOUT for the rest of the head from then."""
        connection.state = _WAITING
        connection.keep = False
        timeout = self.limits.request_timeout if connection.buffer else self.limits.idle_timeout
        self._set_deadline(connection, time.monotonic() + timeout)
        self._watch(connection, _READ)

    def _read(self, connection: _Connection) -> None:
        sock = connection.sock
        try:
            data = sock.recv(_CHUNK)
            if connection.tls:  # decrypted already: no wake-up would tell
                pending = sock.pending()  # type: ignore[attr-defined]
                while pending:
                    data += sock.recv(pending)
                    pending = sock.pending()  # type: ignore[attr-defined]
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except ssl.SSLWantWriteError:
            self._watch(connection, _READ | _WRITE)
            return
        except OSError:  # reset
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        if connection.buffer:
            if isinstance(connection.buffer, bytes):
                connection.buffer = bytearray(connection.buffer)  # grows in place from here on
            connection.buffer += data
        else:
            connection.buffer = data
            self._set_deadline(connection, time.monotonic() + self.limits.request_timeout)
        self._advance(connection)

    def _advance(self, connection: _Connection) -> None:
        """Run the requests whose heads are in, while the connection waits."""
        while connection.state is _WAITING and connection.buffer:
            try:
                length = connection.scanner.end(connection.buffer)
            except Refused as refused:
                self._refuse(connection, refused)
                return
            if not length:
                return
            if self.draining.is_set():  # waiting for another request is what draining ends
                self._close(connection)
                return
            buffer = connection.buffer
            head, connection.buffer = bytes(buffer[:length]), bytes(buffer[length:])
            connection.scanner = HeadScanner()
            try:
                self._start(connection, head)
            except Exception:  # a bug of ours costs this connection only
                self._failed(connection)
                return

    def _start(self, connection: _Connection, head: bytes) -> None:
        """A request head is in: from now on the connection is never evicted."""
        try:
            request = parse_head(head)
            problem = body_problem(request.headers)
            if problem is not None:
                raise Refused(HTTPStatus.BAD_REQUEST, problem, request.method)
        except Refused as refused:
            self._refuse(connection, refused)
            return
        connection.state = _RUNNING
        connection.keep = request.keep_alive
        connection.arrived = time.monotonic()
        if self.web is not None:
            config = self.web.current()
            if config is None:
                connection.keep = False
                self._answer(
                    connection,
                    request,
                    Reply(HTTPStatus.SERVICE_UNAVAILABLE, "503 --web.config.file unusable\n"),
                )
                return
            if config.users:
                users = config.users
                self._run(connection, request, lambda: self._gated(request, users))
                return
        step = plan(request.method, request.target, request.headers, self, connection.arrived)
        if isinstance(step, Reply):
            self._answer(connection, request, step)
        elif isinstance(step, Probe):
            self._probe(connection, request, step)
        else:
            self._run(connection, request, lambda: step.reply(self))

    def _gated(self, request: Request, users: Mapping[str, bytes]) -> Reply:
        """In a worker: basic auth, for every route and method, then the
        request, or 401 (or 503)."""
        assert self.web is not None
        verdict = self.web.auth.allowed(
            users, request.headers.get("Authorization"), self.limits.request_timeout
        )
        if verdict is None:
            return Reply(HTTPStatus.SERVICE_UNAVAILABLE, "503 too many logins at once\n")
        if not verdict:
            return Reply(
                HTTPStatus.UNAUTHORIZED, "401 Unauthorized\n", headers=(("WWW-Authenticate", "Basic"),)
            )
        return route(request.method, request.target, request.headers, self, time.monotonic())

    def _run(self, connection: _Connection, request: Request, make: Callable[[], Reply]) -> None:
        """``make`` the answer in a worker; the loop writes it."""

        def work() -> None:
            try:
                reply = make()
            except Exception:
                error = sys.exc_info()
                self._post(lambda: self._failed(connection, error))
                return
            self._post(lambda: self._done(connection, request, reply))

        self._workers.submit(work)

    def _probe(self, connection: _Connection, request: Request, step: Probe) -> None:
        """Wait for the outcome of the check running for the same target and
        mode, else start one (in a worker)."""
        key = (step.target.name, step.mode)
        waiting = self._probes.get(key)
        if waiting is not None:
            waiting.append((connection, request, step))
            return
        self._probes[key] = [(connection, request, step)]
        target, mode = step.target, step.mode

        def work() -> None:
            try:
                outcome = self.prober.probe(target, mode)
            except Exception:
                error = sys.exc_info()
                self._post(lambda: self._probe_failed(key, error))
                return
            made = time.monotonic()
            self._post(lambda: self._probed(key, outcome, made))

        self._workers.submit(work)

    def _probed(self, key: Tuple[str, str], outcome: Outcome, made: float) -> None:
        """Answer every request that waited for this outcome; one that came
        after it was made waits for a check of its own."""
        waiting = self._probes.pop(key)
        late = [entry for entry in waiting if entry[0].arrived > made]
        for connection, request, step in waiting:
            if connection.arrived <= made:
                self._done(connection, request, step.reply(outcome))
        if late:
            first, *others = late
            self._probe(*first)
            self._probes[key].extend(others)

    def _probe_failed(self, key: Tuple[str, str], error: Any) -> None:
        for connection, _, _ in self._probes.pop(key):
            self._failed(connection, error)

    def _done(self, connection: _Connection, request: Request, reply: Reply) -> None:
        """A worker's answer, for a connection still open."""
        if connection.state is not _RUNNING:
            return
        try:
            self._answer(connection, request, reply)
        except Exception:
            self._failed(connection)
            return
        if connection.state is _WAITING:
            self._advance(connection)  # pipelined requests

    def _refuse(self, connection: _Connection, refused: Refused) -> None:
        """An error as one line of text, and the connection closed after it."""
        status = HTTPStatus(refused.status)
        text = printable(refused.text or status.phrase, 200)  # it may quote the request
        connection.keep = False
        self._send(
            connection, self._encode(Reply(status, f"{status.value} {text}\n"), refused.method == "HEAD")
        )

    def _answer(self, connection: _Connection, request: Request, reply: Reply) -> None:
        connection.keep = connection.keep and not self.draining.is_set()
        data = self._encode(reply, request.method == "HEAD", connection.keep, request.version)
        self._send(connection, data)

    def _encode(
        self, reply: Reply, head: bool, keep: bool = False, version: Tuple[int, int] = (1, 1)
    ) -> bytes:
        """An answer's bytes: its head (and its body, but to HEAD)."""
        shape = (reply.status, reply.content_type, reply.headers, keep, version >= (1, 1))
        parts = self._shapes.get(shape)
        if parts is None or self._shapes_web is not (self.web.headers() if self.web is not None else None):
            parts = self._shape(shape)
        data = reply.body.encode("utf-8")
        answer = f"{parts[0]}{self._date()}{parts[1]}{len(data)}{parts[2]}".encode("latin-1")
        return answer if head else answer + data

    def _shape(self, shape: Tuple[int, str, Tuple[Tuple[str, str], ...], bool, bool]) -> Tuple[str, str, str]:
        """The parts of an answer's head that the same shape (status, type,
        headers, keep-alive, HTTP/1.1) always has, around its Date and
        Content-Length; kept, and made again when the web headers change."""
        status, content_type, extra, keep, http11 = shape
        web = self.web.headers() if self.web is not None else None
        if web is not self._shapes_web or len(self._shapes) >= 64:
            self._shapes, self._shapes_web = {}, web
        fields = {**(web or {}), **dict(extra)}
        if not keep:
            fields["Connection"] = "close"
        elif not http11:
            fields["Connection"] = "keep-alive"
        tail = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        parts = (
            f"HTTP/1.1 {int(status)} {HTTPStatus(status).phrase}\r\nServer: {_SERVER}\r\nDate: ",
            f"\r\nContent-Type: {content_type}\r\nContent-Length: ",
            f"\r\nCache-Control: no-store\r\n{tail}\r\n",
        )
        self._shapes[shape] = parts
        return parts

    def _date(self) -> str:
        second = int(time.time())
        if self.date[0] != second:
            self.date = (second, email.utils.formatdate(second, usegmt=True))
        return self.date[1]

    def _send(self, connection: _Connection, data: bytes) -> None:
        connection.state = _WRITING
        connection.out = memoryview(data)
        connection.deadline = math.inf  # set when the socket does not take it all at once
        self._write(connection)

    def _write(self, connection: _Connection) -> None:
        out = connection.out
        try:
            while out:
                out = out[connection.sock.send(out) :]
        except (BlockingIOError, ssl.SSLWantWriteError):
            self._blocked(connection, out, _WRITE)
            return
        except ssl.SSLWantReadError:
            self._blocked(connection, out, _READ)
            return
        except OSError:  # reset, gone
            self._close(connection)
            return
        connection.out = memoryview(b"")
        if connection.keep and not self.draining.is_set():
            self._wait_for_request(connection)
        else:
            self._close(connection)

    def _blocked(self, connection: _Connection, out: memoryview, events: int) -> None:
        """Write the rest when the socket can take it, within REQUEST_TIMEOUT."""
        connection.out = out
        if connection.deadline == math.inf:
            self._set_deadline(connection, time.monotonic() + self.limits.request_timeout)
        self._watch(connection, events)

    def _failed(self, connection: _Connection, error: Any = None) -> None:
        """A bug of ours (or a peer's reset): the connection closed, the bug in one log line."""
        self._log_error(f"request from {connection.address[0]}", error)
        self._close(connection)

    def _log_error(self, what: str, error: Any = None) -> None:
        exc = (error or sys.exc_info())[1]
        if exc is not None and not isinstance(exc, OSError):
            # The text may hold what a client or a server sent.
            line = printable(f"{what} failed: {type(exc).__name__}: {exc}", 1000)
            sys.stderr.write(f"<4>{line}\n")
            sys.stderr.flush()

    def _close(self, connection: _Connection) -> None:
        self._connections.pop(connection, None)
        self._watch(connection, 0)
        connection.state = _CLOSED
        with contextlib.suppress(OSError):
            connection.sock.close()

    def _watch(self, connection: _Connection, events: int) -> None:
        if events == connection.events:
            return
        if not events:
            self._selector.unregister(connection.sock)
        elif not connection.events:
            self._selector.register(connection.sock, events, connection)
        else:
            self._selector.modify(connection.sock, events, connection)
        connection.events = events

    def _set_deadline(self, connection: _Connection, deadline: float) -> None:
        connection.deadline = deadline
        self._next_check = min(self._next_check, deadline)

    def _expire(self, now: float) -> None:
        """Close the connections past their deadline; note the next one."""
        earliest = math.inf
        for connection in list(self._connections):
            if connection.state is _RUNNING:
                continue  # bounded by -t
            if connection.deadline <= now:
                self._close(connection)
            elif connection.deadline < earliest:
                earliest = connection.deadline
        self._next_check = earliest
