"""Misbehaving FastCGI servers: real listening sockets whose behaviour each
test picks, served from threads. Never a patched function."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Coroutine, List, Optional, TypeVar

import fcgi_wire

Handler = Callable[[socket.socket, threading.Event], None]
T = TypeVar("T")


def read_some(conn: socket.socket) -> bytes:
    """Read what the client sent first (enough to know it sent a request)."""
    conn.settimeout(5)
    try:
        return conn.recv(65536)
    except OSError:
        return b""


class ScriptedServer:
    """Accepts connections and hands each to ``handler`` in its own thread.

    ``family`` is "tcp" (127.0.0.1), "ipv6" ([::1]) or "unix" (a socket in a
    fresh directory). ``accept=False`` listens with a backlog of 0 and never
    accepts, so once the backlog is filled a further connect hangs.
    """

    def __init__(self, handler: Optional[Handler] = None, family: str = "tcp", accept: bool = True) -> None:
        self.handler = handler
        self.family = family
        self.accept = accept
        self.stopping = threading.Event()
        self._threads: List[threading.Thread] = []
        self._conns: List[socket.socket] = []
        self._lock = threading.Lock()
        self._dir: Optional[str] = None
        if family == "unix":
            self._dir = tempfile.mkdtemp(prefix="fcgi-")
            os.chmod(self._dir, 0o755)
            self.path = str(Path(self._dir) / "server.sock")
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(self.path)
        else:
            host = "::1" if family == "ipv6" else "127.0.0.1"
            self.listener = socket.socket(socket.AF_INET6 if family == "ipv6" else socket.AF_INET)
            self.listener.bind((host, 0))
            self.host, self.port = host, self.listener.getsockname()[1]
        self.listener.listen(0 if not accept else 16)

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._conns)

    @property
    def args(self) -> List[str]:
        """check_fastcgi target options pointing here."""
        if self.family == "unix":
            return ["-s", self.path]
        return ["-H", self.host, "-p", str(self.port)]

    def start(self) -> ScriptedServer:
        if self.accept:
            self._spawn(self._accept_loop)
        return self

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.handler is not None:
                self.handler(conn, self.stopping)
        except OSError:
            pass  # the client went away: that is its right
        finally:
            conn.close()

    def fill_backlog(self) -> List[socket.socket]:
        """Open connections nobody accepts until the kernel drops new SYNs."""
        fillers = []
        for _ in range(4):
            filler = socket.socket(self.listener.family, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((self.host, self.port))
            fillers.append(filler)
        with self._lock:
            self._conns.extend(fillers)
        return fillers

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self._lock:
            for conn in self._conns:
                conn.close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._dir:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.rmdir(self._dir)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- behaviours -------------------------------------------------------------------


def silent(conn: socket.socket, stopping: threading.Event) -> None:
    """Accepts, reads the request, never answers: a pool with every worker busy."""
    read_some(conn)
    stopping.wait()


def answers(data: bytes) -> Handler:
    """Reads the request, sends ``data``, closes."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        read_some(conn)
        conn.sendall(data)

    return handler


def answers_and_waits(data: bytes) -> Handler:
    """Reads the request, sends ``data``, keeps the connection open."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        read_some(conn)
        conn.sendall(data)
        stopping.wait()

    return handler


def hangs_up(conn: socket.socket, stopping: threading.Event) -> None:
    """Reads the request and closes without a word."""
    read_some(conn)


def resets(conn: socket.socket, stopping: threading.Event) -> None:
    """Reads the request and resets the connection (RST, not FIN)."""
    read_some(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def read_request(conn: socket.socket) -> List[fcgi_wire.Record]:
    """Read records until the request is complete: the empty FCGI_STDIN for a
    responder request, or a management record."""
    decoder = fcgi_wire.RecordDecoder()
    records: List[fcgi_wire.Record] = []
    conn.settimeout(5)
    while True:
        record = decoder.next_record()
        if record is None:
            chunk = conn.recv(65536)
            if not chunk:
                return records
            decoder.feed(chunk)
            continue
        records.append(record)
        if record.type == fcgi_wire.RecordType.GET_VALUES:
            return records
        if record.type == fcgi_wire.RecordType.STDIN and not record.content:
            return records


def fastcgi_reply(
    stdout: bytes, stderr: bytes = b"", *, protocol_status: int = 0, app_status: int = 0, request_id: int = 1
) -> bytes:
    """A whole responder reply as a well-behaved server would send it."""
    out = fcgi_wire.encode_stream(fcgi_wire.RecordType.STDOUT, request_id, stdout)
    if stderr:
        out += fcgi_wire.encode_stream(fcgi_wire.RecordType.STDERR, request_id, stderr)
    body = app_status.to_bytes(4, "big") + bytes([protocol_status]) + bytes(3)
    return out + fcgi_wire.encode_record(fcgi_wire.RecordType.END_REQUEST, request_id, body)


def responds(data: bytes) -> Handler:
    """Reads a whole request, sends ``data``, closes."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        read_request(conn)
        conn.sendall(data)

    return handler


# --- a server that multiplexes ------------------------------------------------------


class MultiplexingServer(ScriptedServer):
    """A FastCGI application server that says FCGI_MPXS_CONNS=1, honours
    FCGI_KEEP_CONN and answers the requests of one connection interleaved:
    whatever requests a read completes are answered together, their STDOUT
    in two pieces each, the pieces of different requests alternating and
    the latest request first. The body says which request it answers:
    ``id=<request id> script=<SCRIPT_NAME> body=<stdin>``; a request with
    ``REFUSE=1`` in its params gets FCGI_OVERLOADED.

    ``max_in_flight`` is the most requests one read completed at once,
    ``requests`` how many it answered, ``connections`` how many it accepted.
    """

    def __init__(self, family: str = "tcp") -> None:
        super().__init__(self._serve_connection, family=family)
        self.max_in_flight = 0
        self.requests = 0

    @property
    def connections(self) -> int:
        return self.accepted

    def _serve_connection(self, conn: socket.socket, stopping: threading.Event) -> None:
        decoder = fcgi_wire.RecordDecoder()
        open_requests: dict = {}  # request id -> [keep_conn, params bytes, stdin bytes, role]
        conn.settimeout(0.2)
        while not stopping.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            decoder.feed(chunk)
            complete = []
            while (record := decoder.next_record()) is not None:
                if record.type == fcgi_wire.RecordType.GET_VALUES:
                    names = [name.decode() for name, _ in fcgi_wire.decode_pairs(record.content)]
                    known = {"FCGI_MPXS_CONNS": "1", "FCGI_MAX_CONNS": "4", "FCGI_MAX_REQS": "64"}
                    pairs = [(name, known[name]) for name in names if name in known]
                    conn.sendall(
                        fcgi_wire.encode_record(
                            fcgi_wire.RecordType.GET_VALUES_RESULT, 0, fcgi_wire.encode_pairs(pairs)
                        )
                    )
                elif record.type == fcgi_wire.RecordType.BEGIN_REQUEST:
                    role, flags = struct.unpack("!HB5x", record.content)
                    open_requests[record.request_id] = [bool(flags & 1), b"", b"", role]
                elif record.type == fcgi_wire.RecordType.PARAMS:
                    open_requests[record.request_id][1] += record.content
                elif record.type == fcgi_wire.RecordType.STDIN:
                    if record.content:
                        open_requests[record.request_id][2] += record.content
                    else:
                        complete.append(record.request_id)
            if not complete:
                continue
            self.max_in_flight = max(self.max_in_flight, len(complete))
            keep = self._answer(conn, complete, open_requests)
            if not keep:
                return

    def _answer(self, conn: socket.socket, complete: List[int], open_requests: dict) -> bool:
        stdout = fcgi_wire.RecordType.STDOUT
        pieces = {}
        for request_id in complete:
            params = dict(fcgi_wire.decode_pairs(open_requests[request_id][1]))
            if params.get(b"REFUSE") == b"1":
                pieces[request_id] = None
                continue
            text = b"Content-Type: text/plain\r\n\r\nid=%d script=%s body=" % (
                request_id,
                params.get(b"SCRIPT_NAME", b"-"),
            )
            text += open_requests[request_id][2]
            half = len(text) // 2
            pieces[request_id] = (text[:half], text[half:])
        order = list(reversed(complete))
        out = []
        for part in (0, 1):
            for request_id in order:
                if pieces[request_id] is not None and pieces[request_id][part]:
                    out.append(fcgi_wire.encode_record(stdout, request_id, pieces[request_id][part]))
        keep = True
        for request_id in order:
            status = 2 if pieces[request_id] is None else 0
            if pieces[request_id] is not None:
                out.append(fcgi_wire.encode_record(stdout, request_id))
            body = bytes(4) + bytes([status]) + bytes(3)
            out.append(fcgi_wire.encode_record(fcgi_wire.RecordType.END_REQUEST, request_id, body))
            keep = keep and open_requests.pop(request_id)[0]
            self.requests += 1
        conn.sendall(b"".join(out))
        return keep


# --- an asyncio driver ------------------------------------------------------------------


def run_async(coroutine: Coroutine[Any, Any, T], limit: float = 60.0) -> T:
    """Run a coroutine of the asyncio client on a fresh loop, bounded in time
    (a hung test fails instead of hanging the run)."""
    import asyncio  # noqa: PLC0415 - only the asyncio tests need it

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, limit)

    return asyncio.run(bounded())


def open_fds() -> int:
    """This process's open descriptors: what a client must not leave behind."""
    return len(os.listdir("/proc/self/fd"))


def address_of(server: ScriptedServer) -> fcgi_wire.Address:
    """The fcgi_wire address a scripted server listens on."""
    if server.family == "unix":
        return fcgi_wire.UnixAddress(server.path)
    return fcgi_wire.TcpAddress(server.host, server.port)
