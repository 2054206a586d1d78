"""Hostile FastCGI servers, each with the state and summary the plugin
must give for it in each mode (under -t 1)."""

from __future__ import annotations

import socket
import threading
from typing import Callable, Dict, List, Optional, Tuple

import fcgi_wire
from fcgi_wire import RecordType, encode_record
from tests import servers

#: What a mode sends decides what a "reply" is: GET_VALUES or a request.
Reply = Callable[[bool, socket.socket, threading.Event], None]

GOOD_VALUES = encode_record(
    RecordType.GET_VALUES_RESULT, 0, fcgi_wire.encode_pairs([("FCGI_MPXS_CONNS", "0")])
)
GOOD_PING = servers.fastcgi_reply(b"Content-Type: text/plain\r\n\r\npong")


def good_reply(is_values: bool) -> bytes:
    return GOOD_VALUES if is_values else GOOD_PING


def behaves(action: Callable[[bool, socket.socket, threading.Event], None]) -> servers.Handler:
    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        records = servers.read_request(conn)
        is_values = bool(records) and records[0].type == RecordType.GET_VALUES
        action(is_values, conn, stopping)

    return handler


def send(data: bytes, *, then_wait: bool = False) -> servers.Handler:
    def action(is_values: bool, conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(data)
        if then_wait:
            stopping.wait()

    return behaves(action)


def send_per_mode(make: Callable[[bool], bytes], *, then_wait: bool = False) -> servers.Handler:
    def action(is_values: bool, conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(make(is_values))
        if then_wait:
            stopping.wait()

    return behaves(action)


def endless(chunk: Callable[[bool], bytes]) -> servers.Handler:
    """Streams records until the client goes away (or the test ends)."""

    def action(is_values: bool, conn: socket.socket, stopping: threading.Event) -> None:
        piece = chunk(is_values) * 64
        conn.settimeout(5)
        while not stopping.is_set():
            conn.sendall(piece)

    return behaves(action)


def drip(data_of: Callable[[bool], bytes], pause: float) -> servers.Handler:
    """A valid reply, one byte at a time."""

    def action(is_values: bool, conn: socket.socket, stopping: threading.Event) -> None:
        for byte in data_of(is_values):
            conn.sendall(bytes([byte]))
            if pause and stopping.wait(pause):
                return
        stopping.wait()

    return behaves(action)


def reset_after(data: bytes) -> servers.Handler:
    def action(is_values: bool, conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(data)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    return behaves(action)


def closes_unread(conn: socket.socket, stopping: threading.Event) -> None:
    """Hangs up before reading the request at all."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def stdout_record(payload: bytes, request_id: int = 1) -> bytes:
    return encode_record(RecordType.STDOUT, request_id, payload)


def end_request(status: int = 0, body: Optional[bytes] = None) -> bytes:
    return encode_record(
        RecordType.END_REQUEST, 1, body if body is not None else bytes(4) + bytes([status]) + bytes(3)
    )


# (behaviour, {mode or "*": (exit code, regex the summary must match)})
# A server that hangs up may do so before the request is even sent (a loaded
# machine schedules it first): then sending fails, which is as true.
CLOSED = (
    r"(connection closed before the reply was complete|connection reset by the server before the reply was complete"
    r"|sending the request failed: connection (closed|reset) by the server"
    r"|connect to \S+: connection reset by the server)"
)
TIMED_OUT_EMPTY = r"no reply from \S+ within 1s \(-t\): connection accepted, but nothing answered \(every worker busy, or not a FastCGI server\?\)"
Expect = Dict[str, Tuple[int, str]]
BEHAVIOURS: List[Tuple[str, servers.Handler, Expect]] = [
    ("silent", servers.silent, {"*": (2, TIMED_OUT_EMPTY)}),
    ("closes-unread", closes_unread, {"*": (2, CLOSED)}),
    (
        "closes-after-reading",
        servers.hangs_up,
        {"*": (2, r"connection closed before the reply was complete \(0 bytes received\)")},
    ),
    # Unix sockets know no RST: there a reset reads as a close.
    ("resets", reset_after(b""), {"*": (2, CLOSED + r" \(0 bytes received\)")}),
    (
        "resets-mid-reply",
        reset_after(stdout_record(b"Status: 200\r\n")[:12]),
        {"*": (2, CLOSED + "|protocol error: truncated")},
    ),
    (
        "speaks-http",
        send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        {
            "*": (
                2,
                r"protocol error: bad FastCGI version 72 in record header \(the peer seems to speak HTTP, not FastCGI\)",
            )
        },
    ),
    (
        "speaks-tls",
        send(b"\x16\x03\x01\x00\x05hello"),
        {"*": (2, r"protocol error: bad FastCGI version 22 in record header")},
    ),
    (
        "version-2",
        send(b"\x02\x06\x00\x01\x00\x00\x00\x00"),
        {"*": (2, r"protocol error: bad FastCGI version 2 ")},
    ),
    (
        "truncated-header",
        send(b"\x01\x06\x00"),
        {"*": (2, r"protocol error: truncated record: connection closed after 3 of 8 header bytes")},
    ),
    (
        "truncated-header-then-hangs",
        send(b"\x01\x06\x00", then_wait=True),
        {"*": (2, r"reply from \S+ incomplete after 1s \(-t\): 3 bytes received")},
    ),
    (
        "content-length-lies",
        send(b"\x01\x06\x00\x01\x03\xe8\x00\x00" + b"x" * 10),
        {"*": (2, r"protocol error: truncated FCGI_STDOUT record: connection closed after 18 of 1008 bytes")},
    ),
    (
        "padding-lies",
        send(b"\x01\x06\x00\x01\x00\x02\xff\x00ok"),
        {"*": (2, r"protocol error: truncated FCGI_STDOUT record: connection closed after 10 of 265 bytes")},
    ),
    (
        "wrong-request-id",
        send(stdout_record(b"x", request_id=7) + end_request()),
        {"*": (2, r"protocol error: FCGI_STDOUT record for request id 7, expected 1")},
    ),
    (
        "unknown-record-type",
        send(encode_record(42, 1, b"")),
        {"*": (2, r"protocol error: unknown record type 42")},
    ),
    (
        "client-record-type",
        send(encode_record(RecordType.PARAMS, 1, b"")),
        {"*": (2, r"protocol error: server sent FCGI_PARAMS, a record only clients send")},
    ),
    (
        "management-on-request-id",
        send(encode_record(RecordType.GET_VALUES_RESULT, 3, b"")),
        {
            "*": (
                2,
                r"protocol error: FCGI_GET_VALUES_RESULT record with request id 3 \(management records use 0\)",
            )
        },
    ),
    (
        "short-end-request",
        send(stdout_record(b"\r\n") + end_request(body=b"\x00\x00\x00")),
        {
            "handshake": (2, r"protocol error: FCGI_STDOUT record for a request that is not open"),
            "*": (2, r"protocol error: FCGI_END_REQUEST body of 3 bytes, expected 8"),
        },
    ),
    (
        "unknown-protocol-status",
        send(end_request(status=9)),
        {
            "handshake": (2, r"protocol error: FCGI_END_REQUEST record for a request that is not open"),
            "*": (2, r"protocol error: FCGI_END_REQUEST with unknown protocolStatus 9"),
        },
    ),
    (
        "overloaded",
        send(end_request(status=2)),
        {
            "handshake": (2, r"protocol error: FCGI_END_REQUEST record for a request that is not open"),
            "*": (2, r"\S+ refused the request: FCGI_OVERLOADED"),
        },
    ),
    (
        "cant-mpx-conn",
        send(end_request(status=1)),
        {"handshake": (2, r"not open"), "*": (2, r"\S+ refused the request: FCGI_CANT_MPX_CONN")},
    ),
    (
        "unknown-role",
        send(end_request(status=3)),
        {"handshake": (2, r"not open"), "*": (2, r"\S+ refused the request: FCGI_UNKNOWN_ROLE")},
    ),
    (
        "end-before-stdout",
        send(end_request() + stdout_record(b"Status: 200\r\n\r\npong")),
        {
            "handshake": (2, r"not open"),
            "*": (2, r"protocol error: CGI output without the blank line that ends its headers \(0 bytes"),
        },
    ),
    (
        "lying-pair-lengths",
        send(encode_record(RecordType.GET_VALUES_RESULT, 0, b"\x0f\x7fFCGI_MPXS_CONNS")),
        {
            "handshake": (
                2,
                r"protocol error: name-value pair truncated: lengths 15\+127 run 127 bytes past the record",
            ),
            "*": (2, r"protocol error: unsolicited FCGI_GET_VALUES_RESULT record"),
        },
    ),
    (
        "4-byte-pair-length-cut",
        send(encode_record(RecordType.GET_VALUES_RESULT, 0, b"\x80\x00")),
        {
            "handshake": (2, r"protocol error: name-value pair truncated: 4-byte name length cut short"),
            "*": (2, r"unsolicited"),
        },
    ),
    (
        "no-header-end",
        send(stdout_record(b"Content-Type: text/plain\r\npong") + end_request()),
        {
            "handshake": (2, r"not open"),
            "*": (2, r"protocol error: CGI output without the blank line that ends its headers"),
        },
    ),
    (
        "bad-status-header",
        send(stdout_record(b"Status: two hundred\r\n\r\n") + end_request()),
        {
            "handshake": (2, r"not open"),
            "*": (2, r"protocol error: malformed CGI Status header 'two hundred'"),
        },
    ),
    (
        "endless-stdout",
        endless(lambda v: stdout_record(b"A" * 65000)),
        {
            "handshake": (2, r"not open"),
            "*": (2, r"protocol error: reply larger than the cap of 8388608 bytes"),
        },
    ),
    (
        "endless-stderr",
        endless(lambda v: encode_record(RecordType.STDERR, 1, b"E" * 65000)),
        {
            "handshake": (2, r"not open"),
            "*": (2, r"protocol error: reply larger than the cap of 8388608 bytes"),
        },
    ),
    (
        "endless-empty-records",
        endless(lambda v: stdout_record(b"")),
        {
            "handshake": (2, r"not open"),
            "*": (2, r"(reply larger than the cap of 8388608 bytes|incomplete after 1s)"),
        },
    ),
    (
        "drips-past-the-deadline",
        drip(good_reply, 0.05),
        {"*": (2, r"reply from \S+ incomplete after 1s \(-t\): \d+ bytes received")},
    ),
    (
        "byte-at-a-time",
        drip(good_reply, 0),
        {
            "handshake": (0, r"answered FCGI_GET_VALUES"),
            "ping": (0, r"answered 200 OK"),
            "status": (3, r"is not a PHP-FPM status page \(not JSON\): 'pong'"),
        },
    ),
    (
        "trailing-records-after-end",
        send_per_mode(lambda v: good_reply(v) + stdout_record(b"more") + b"\xff" * 20),
        {
            "handshake": (0, r"answered"),
            "ping": (0, r"answered 200 OK"),
            "status": (3, r"not a PHP-FPM status page"),
        },
    ),
    (
        "hostile-body",
        send(
            servers.fastcgi_reply(b"Status: 500 Oops|\x1b[31m\r\n\r\n\xff\xfe|pong\x00\x07\x1b]0;pwned\x07")
        ),
        {
            "handshake": (2, r"not open"),
            "ping": (
                2,
                "HTTP 500 Oops\\\\x7c\\\\x1b\\[31m, expected 200: got '\ufffd\ufffd\\\\x7cpong\\\\x00\\\\x07",
            ),
            "status": (2, r"answered HTTP 500: '"),
        },
    ),
]
