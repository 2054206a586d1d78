"""serve's HTTP transport: the request head parser in-process (pure
functions: HeadScanner, parse_head, body_problem), then what only a real
connection to a real ``check_fastcgi serve`` shows: pipelining, HTTP/1.0
keep-alive, header lines that another parser would read otherwise."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from check_fastcgi.serve.head import MAX_HEADERS, MAX_LINE, HeadScanner, Refused, body_problem, parse_head
from tests.fpm import FpmPool
from tests.sidecar import Sidecar

LIMIT = 15.0
HEAD = b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\nAccept: */*\r\n\r\n"


def scan(*pieces: bytes) -> int:
    """HeadScanner over bytes that come in these pieces: the head's length
    once it is whole (0 while it is not)."""
    scanner, data, length = HeadScanner(), b"", 0
    for piece in pieces:
        data += piece
        length = scanner.end(data)
        if length:
            return length
    return length


# --- where a head ends ---------------------------------------------------------------


def test_a_head_ends_at_its_empty_line_however_it_comes() -> None:
    pipelined = HEAD + b"GET /metrics HTTP/1.1\r\n\r\n"
    assert scan(pipelined) == len(HEAD)
    assert scan(*[bytes([byte]) for byte in pipelined]) == len(HEAD)
    assert scan(HEAD[:-1]) == 0
    bare = b"GET / HTTP/1.1\nHost: x\n\n"
    assert scan(bare + b"GET") == len(bare)  # bare LF, as http.server takes it
    assert scan(b"\r\nGET / HTTP/1.1\r\n\r\n") == 2  # an empty request line: a head (refused) of its own


@pytest.mark.parametrize(
    ("data", "status", "text"),
    [
        (b"GET /" + b"a" * MAX_LINE, 414, "Request-URI Too Long"),  # before its end came
        (b"GET /" + b"a" * MAX_LINE + b" HTTP/1.1\r\n\r\n", 414, "Request-URI Too Long"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_LINE + b"\r\n\r\n", 431, "Line too long"),
        (b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * (MAX_HEADERS + 1) + b"\r\n", 431, "Too many headers"),
    ],
    ids=["request-line-incomplete", "request-line", "header-line", "header-count"],
)
def test_a_head_past_http_servers_limits_is_refused(data: bytes, status: int, text: str) -> None:
    with pytest.raises(Refused) as refused:
        scan(data)
    assert (refused.value.status, refused.value.text) == (status, text)


def test_a_head_at_the_limits_is_whole() -> None:
    longest = b"X: " + b"a" * (MAX_LINE - 5) + b"\r\n"
    assert len(longest) == MAX_LINE
    head = b"GET / HTTP/1.1\r\n" + longest + b"Y: b\r\n" * (MAX_HEADERS - 1) + b"\r\n"
    assert scan(head) == len(head)
    assert len(parse_head(head).headers.get_all("Y")) == MAX_HEADERS - 1


# --- what a head says -----------------------------------------------------------------


def test_a_head_parsed() -> None:
    request = parse_head(
        b"HEAD /p0/ping?format=json HTTP/1.1\r\nhost: a\r\nAccept:  application/json \t\r\n"
        b"X-Empty:\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\n"
    )
    assert (request.method, request.target, request.version) == ("HEAD", "/p0/ping?format=json", (1, 1))
    headers = request.headers
    assert headers.get("ACCEPT") == "application/json" and headers.get("x-empty") == ""
    assert headers.get("X-Twice") == "1" and headers.get_all("X-TWICE") == ["1", "2"]
    assert "Host" in headers and "Cookie" not in headers and headers.get("Cookie", "none") == "none"
    assert request.keep_alive


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", None, True),
        ("1.1", "close", False),
        ("1.1", "Keep-Alive, Close", False),
        ("1.0", None, False),
        ("1.0", "keep-alive", True),
        ("1.0", "Keep-Alive", True),
    ],
)
def test_keep_alive_as_http_says(version: str, connection: str, keep_alive: bool) -> None:
    field = f"Connection: {connection}\r\n" if connection else ""
    request = parse_head(f"GET / HTTP/{version}\r\n{field}\r\n".encode())
    assert request.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("GET / HTTP/2.0", 505),
        ("GET / HTTP/1.1.1", 400),
        ("GET / HTTPS/1.1", 400),
        ("GET / HTTP/1.x", 400),
        ("GET http://sidecar/ HTTP/1.1", 400),
        ("GET /\x7f HTTP/1.1", 400),
        ("GET / HTTP/1.1 x", 400),
        ("", 400),
    ],
)
def test_a_request_line_refused(line: str, status: int) -> None:
    with pytest.raises(Refused) as refused:
        parse_head(line.encode("latin-1") + b"\r\n\r\n")
    assert refused.value.status == status


def test_http_0_9_and_a_higher_1_x_are_answered_as_1_1() -> None:
    assert parse_head(b"GET / HTTP/1.9\r\n\r\n").version == (1, 9)
    assert parse_head(b"GET / HTTP/0.9\r\n\r\n").version == (0, 9)


@pytest.mark.parametrize(
    "field",
    [
        b"Transfer-Encoding : chunked",  # a space before the colon: another parser's header
        b" folded",  # obs-fold: the line before, continued
        b"\tfolded",
        b"X-Nul: a\x00b",
        b"X-Cr: a\rb",
        b"X-Escape: \x1b[31m",
        b"No colon",
        b": no name",
        b"X(y): z",
    ],
    ids=[
        "space-before-colon",
        "fold-space",
        "fold-tab",
        "nul",
        "bare-cr",
        "escape",
        "no-colon",
        "no-name",
        "bad-name",
    ],
)
def test_a_header_line_that_is_no_name_value_pair_is_refused(field: bytes) -> None:
    with pytest.raises(Refused) as refused:
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + field + b"\r\n\r\n")
    assert refused.value.status == 400 and refused.value.method == "GET"


def test_header_values_may_hold_tabs_and_what_latin_1_decodes() -> None:
    headers = parse_head(b"GET / HTTP/1.1\r\nUser-Agent: a\tb \xe9\xff\r\n\r\n").headers
    assert headers.get("User-Agent") == "a\tb \xe9\xff"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, None),
        ({"Content-Length": ["0"]}, None),
        ({"Content-Length": ["0", " 0 "]}, None),
        ({"Content-Length": ["0", "5"]}, "Content-Length must be 0"),
        ({"content-length": ["01"]}, "Content-Length must be 0"),
        ({"Transfer-Encoding": ["identity"]}, "no Transfer-Encoding"),
        ({"EXPECT": ["100-continue"]}, "no Expect"),
    ],
)
def test_no_body_is_accepted(fields: Dict[str, List[str]], problem: str) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, values in fields.items() for value in values)
    found = body_problem(parse_head(f"GET / HTTP/1.1\r\n{lines}\r\n".encode()).headers)
    assert (found is None) if problem is None else (found is not None and problem in found), found


# --- over a real connection -------------------------------------------------------------


def read_response(
    conn: socket.socket, buffer: bytearray, head: bool = False
) -> Tuple[int, Dict[str, str], bytes]:
    """The next whole response from ``conn`` (to HEAD: no body); what came
    after it stays in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        assert chunk, f"closed mid-response: {bytes(buffer)!r}"
        buffer += chunk
    top, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    end = len(top) + 4 + (0 if head else int(headers["content-length"]))
    while len(buffer) < end:
        chunk = conn.recv(65536)
        assert chunk, "closed mid-body"
        buffer += chunk
    body = bytes(buffer[len(top) + 4 : end])
    del buffer[:end]
    return int(lines[0].split()[1]), headers, body


def closed(conn: socket.socket) -> bool:
    conn.settimeout(LIMIT)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_are_answered_in_order(fpm: FpmPool) -> None:
    with Sidecar("--target", f"www=127.0.0.1:{fpm.port}") as sidecar:
        conn = socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT)
        with conn:
            conn.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"
                b"HEAD /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /ping?format=json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            buffer = bytearray()
            answers = [read_response(conn, buffer, head=n == 2) for n in range(4)]
            assert closed(conn) and not buffer
    (health, _, text), (ping, _, pong), (missing, _, nothing), (json, headers, document) = answers
    assert (health, ping, missing, json) == (200, 200, 404, 200)
    assert text.startswith(b"ok: check_fastcgi serve") and pong.startswith(b"FASTCGI OK - ")
    assert nothing == b"" and document.startswith(b'{"state": "OK"') and headers["connection"] == "close"


def test_http_1_0_keep_alive_is_said_and_kept(fpm: FpmPool) -> None:
    with (
        Sidecar("--target", f"www=127.0.0.1:{fpm.port}") as sidecar,
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT) as conn,
    ):
        buffer = bytearray()
        for _ in range(2):
            conn.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = read_response(conn, buffer)
            assert status == 200 and headers["connection"] == "keep-alive"
        conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, headers, _ = read_response(conn, buffer)
        assert status == 200 and headers["connection"] == "close" and closed(conn)


def test_a_header_another_parser_would_read_otherwise_is_refused(fpm: FpmPool) -> None:
    """'Transfer-Encoding : chunked' is no header to http.server (email's
    parser ends the head there) and a chunked body to a proxy that strips
    the space: refused, so the two cannot read the stream apart."""
    with Sidecar("--target", f"www=127.0.0.1:{fpm.port}") as sidecar:
        for field in (b"Transfer-Encoding : chunked", b"X-A: b\r\n Transfer-Encoding: chunked"):
            with socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + field + b"\r\n\r\n0\r\n\r\n")
                status, headers, body = read_response(conn, bytearray())
                assert (status, headers["connection"]) == (400, "close") and closed(conn), body
        assert sidecar.get("/healthz")[0] == 200


def test_a_head_that_comes_a_byte_at_a_time_within_the_limit(fpm: FpmPool) -> None:
    with (
        Sidecar("--target", f"www=127.0.0.1:{fpm.port}") as sidecar,
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT) as conn,
    ):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in HEAD:
            conn.send(bytes([byte]))
            time.sleep(0.002)
        assert read_response(conn, bytearray())[0] == 200


def test_many_clients_at_once_share_one_check(tmp_path: Path) -> None:
    """Twenty keep-alive clients asking for /ping while a slow check runs:
    one exchange answers them all (the loop's waiters, no thread each)."""
    with FpmPool(tmp_path / "fpm", max_children=2) as pool:
        slow = ["--ping-path", "/slow.php", "--script-filename", pool.script("slow.php"), "-e", "slept"]
        with Sidecar("--target", f"www=127.0.0.1:{pool.port}", *slow) as sidecar:
            conns = [socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT) for _ in range(20)]
            try:
                for conn in conns:
                    conn.sendall(b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
                answers = [read_response(conn, bytearray()) for conn in conns]
            finally:
                for conn in conns:
                    conn.close()
    assert [status for status, _, _ in answers] == [200] * 20
    assert len({body for _, _, body in answers}) <= 2, "one check (or two) for twenty clients"


def test_many_pipelined_requests_from_a_client_that_reads_late(fpm: FpmPool) -> None:
    """3000 requests sent before the client reads a byte (into a small
    receive buffer): every one is answered, and the server reads on."""
    count = 3000
    with Sidecar("--target", f"www=127.0.0.1:{fpm.port}") as sidecar:
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.settimeout(LIMIT)
        with conn:
            conn.connect(("127.0.0.1", sidecar.port))
            requests = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" * (count - 1)
            requests += b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            sender = threading.Thread(target=conn.sendall, args=(requests,))
            sender.start()
            time.sleep(1)  # answers pile up meanwhile
            buffer = bytearray()
            statuses = [read_response(conn, buffer)[0] for _ in range(count)]
            sender.join(LIMIT)
            assert closed(conn)
        assert statuses == [200] * count
        assert sidecar.get("/healthz")[0] == 200
