"""The sans-I/O codec: golden bytes, round trips, any chunking, bad input."""

from __future__ import annotations

import struct
from typing import List, Sequence

import pytest

import fcgi_wire
from fcgi_wire import (
    NEED_DATA,
    BeginRequest,
    Connection,
    EndRequest,
    GetValues,
    Params,
    ProtocolStatus,
    Record,
    RecordDecoder,
    RecordType,
    RemoteProtocolError,
    Stderr,
    Stdin,
    Stdout,
    UnknownType,
    ValuesResult,
)


def header(rtype: int, rid: int, length: int, padding: int) -> bytes:
    return bytes([1, rtype]) + struct.pack("!HHBx", rid, length, padding)


# One table drives encoding and decoding: (record, its exact bytes).
GOLDEN = [
    (
        Record(RecordType.BEGIN_REQUEST, 1, b"\x00\x01\x00\x00\x00\x00\x00\x00"),
        header(1, 1, 8, 0) + b"\x00\x01\x00\x00\x00\x00\x00\x00",
    ),
    (Record(RecordType.ABORT_REQUEST, 1), header(2, 1, 0, 0)),
    (Record(RecordType.END_REQUEST, 1, bytes(8)), header(3, 1, 8, 0) + bytes(8)),
    (Record(RecordType.PARAMS, 1, b"\x01\x01ab"), header(4, 1, 4, 4) + b"\x01\x01ab" + bytes(4)),
    (Record(RecordType.PARAMS, 1), header(4, 1, 0, 0)),
    (Record(RecordType.STDIN, 1, b"x"), header(5, 1, 1, 7) + b"x" + bytes(7)),
    (Record(RecordType.STDOUT, 1, b"pong1234"), header(6, 1, 8, 0) + b"pong1234"),
    (Record(RecordType.STDERR, 1, b"oops"), header(7, 1, 4, 4) + b"oops" + bytes(4)),
    (Record(RecordType.DATA, 1, b"d"), header(8, 1, 1, 7) + b"d" + bytes(7)),
    (
        Record(RecordType.GET_VALUES, 0, b"\x0f\x00FCGI_MPXS_CONNS"),
        header(9, 0, 17, 7) + b"\x0f\x00FCGI_MPXS_CONNS" + bytes(7),
    ),
    (
        Record(RecordType.GET_VALUES_RESULT, 0, b"\x0f\x01FCGI_MPXS_CONNS0"),
        header(10, 0, 18, 6) + b"\x0f\x01FCGI_MPXS_CONNS0" + bytes(6),
    ),
    (Record(RecordType.UNKNOWN_TYPE, 0, b"\x2a" + bytes(7)), header(11, 0, 8, 0) + b"\x2a" + bytes(7)),
    (Record(RecordType.STDOUT, 0xFFFF, b"id"), header(6, 0xFFFF, 2, 6) + b"id" + bytes(6)),
]


def decode_all(chunks: Sequence[bytes], eof: bool = True) -> List[Record]:
    decoder = RecordDecoder()
    records = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (record := decoder.next_record()) is not None:
            records.append(record)
    if eof:
        decoder.feed_eof()
        while (record := decoder.next_record()) is not None:
            records.append(record)
    return records


def splits(data: bytes) -> List[List[bytes]]:
    """The same bytes whole, one byte at a time, and in uneven chunks (h11's tr())."""
    return [
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data[i : i + 5] for i in range(0, len(data), 5)],
    ]


@pytest.mark.parametrize(
    ("record", "wire"), GOLDEN, ids=lambda v: getattr(v, "type", None) and RecordType(v.type).name
)
def test_golden_encode(record: Record, wire: bytes) -> None:
    assert fcgi_wire.encode_record(record.type, record.request_id, record.content) == wire


@pytest.mark.parametrize(
    ("record", "wire"), GOLDEN, ids=lambda v: getattr(v, "type", None) and RecordType(v.type).name
)
def test_golden_decode_in_any_chunking(record: Record, wire: bytes) -> None:
    for chunks in splits(wire):
        assert decode_all(chunks) == [record]


def test_one_byte_at_a_time_needs_data_until_complete() -> None:
    wire = GOLDEN[6][1]
    decoder = RecordDecoder()
    for byte in wire[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_record() is None
    decoder.feed(wire[-1:])
    assert decoder.next_record() == GOLDEN[6][0]


def test_trailing_bytes_stay_buffered() -> None:
    wire = GOLDEN[6][1] + GOLDEN[7][1][:5]
    decoder = RecordDecoder()
    decoder.feed(wire)
    assert decoder.next_record() == GOLDEN[6][0]
    assert decoder.next_record() is None
    assert decoder.buffered == 5


def test_padding_is_skipped_whatever_its_length() -> None:
    wire = header(6, 1, 2, 255) + b"ok" + bytes(255) + GOLDEN[6][1]
    for chunks in splits(wire):
        assert decode_all(chunks) == [Record(6, 1, b"ok"), GOLDEN[6][0]]


def test_stream_splits_at_65535_and_terminates() -> None:
    data = bytes(range(256)) * 600  # 153600 bytes: 65535 + 65535 + 22530
    wire = fcgi_wire.encode_stream(RecordType.STDIN, 3, data)
    records = decode_all([wire])
    assert [len(r.content) for r in records] == [65535, 65535, 22530, 0]
    assert b"".join(r.content for r in records) == data
    assert all(r.type == RecordType.STDIN and r.request_id == 3 for r in records)


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(fcgi_wire.LocalProtocolError):
        fcgi_wire.encode_record(RecordType.STDOUT, 1, bytes(65536))
    with pytest.raises(fcgi_wire.LocalProtocolError):
        fcgi_wire.encode_record(RecordType.STDOUT, 70000)


# --- name-value pairs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name_len", "value_len", "prefix"),
    [
        (0, 0, b"\x00\x00"),
        (127, 127, b"\x7f\x7f"),
        (128, 1, b"\x80\x00\x00\x80\x01"),
        (1, 128, b"\x01\x80\x00\x00\x80"),
        (128, 70000, b"\x80\x00\x00\x80\x80\x01\x11\x70"),
    ],
)
def test_pair_lengths(name_len: int, value_len: int, prefix: bytes) -> None:
    name, value = b"n" * name_len, b"v" * value_len
    wire = fcgi_wire.encode_pairs([(name, value)])
    assert wire == prefix + name + value
    assert fcgi_wire.decode_pairs(wire) == [(name, value)]


def test_pairs_round_trip_str_as_utf8() -> None:
    pairs = [("SCRIPT_NAME", "/ping"), ("QUERY_STRING", "q=é"), ("EMPTY", "")]
    decoded = fcgi_wire.decode_pairs(fcgi_wire.encode_pairs(pairs))
    assert decoded == [(n.encode(), v.encode("utf-8")) for n, v in pairs]


@pytest.mark.parametrize(
    "wire",
    [
        b"\x05",  # value length missing
        b"\x80\x00",  # 4-byte name length cut short
        b"\x01\x80\x00",  # 4-byte value length cut short
        b"\x05\x05abc",  # lengths run past the end
        b"\xff\xff\xff\xff\x00",  # a name of 2 GiB in a 5-byte record
    ],
)
def test_lying_pair_lengths_raise_protocol_error(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="name-value pair truncated"):
        fcgi_wire.decode_pairs(wire)


# --- malformed records ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "bad FastCGI version 72 .*speak HTTP"),
        (b"\x02\x06\x00\x01\x00\x00\x00\x00", "bad FastCGI version 2"),
        (b"\x01\x06\x00", "truncated record: .*3 of 8 header bytes"),
        (header(6, 1, 10, 0) + b"abc", "truncated FCGI_STDOUT record: .*11 of 18 bytes"),
        (header(6, 1, 2, 6) + b"ok\x00", "truncated FCGI_STDOUT record"),
    ],
)
def test_malformed_records(wire: bytes, message: str) -> None:
    for chunks in splits(wire):
        with pytest.raises(RemoteProtocolError, match=message):
            decode_all(chunks)


# --- the client connection -------------------------------------------------------------


def events_of(conn: Connection, wire: bytes, chunk: int = 0) -> list:
    chunks = [wire] if not chunk else [wire[i : i + chunk] for i in range(0, len(wire), chunk)]
    events = []
    for piece in chunks:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            if conn.done:
                return events
    return events


def responder() -> Connection:
    conn = Connection()
    conn.send(BeginRequest())
    return conn


END_OK = fcgi_wire.encode_record(RecordType.END_REQUEST, 1, bytes(8))


@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_connection_reply_in_any_chunking(chunk: int) -> None:
    wire = (
        fcgi_wire.encode_record(RecordType.STDOUT, 1, b"Status: 200\r\n\r\npong")
        + fcgi_wire.encode_record(RecordType.STDERR, 1, b"warn")
        + fcgi_wire.encode_record(RecordType.STDOUT, 1)
        + END_OK
    )
    conn = responder()
    assert events_of(conn, wire, chunk) == [
        Stdout(b"Status: 200\r\n\r\npong"),
        Stderr(b"warn"),
        EndRequest(0, ProtocolStatus.REQUEST_COMPLETE),
    ]
    assert conn.done


def test_connection_outgoing_request_bytes() -> None:
    conn = Connection(request_id=1)
    wire = conn.send(BeginRequest()) + conn.send(Params(((b"A", b"b"),))) + conn.send(Stdin(b""))
    assert decode_all([wire]) == [
        Record(RecordType.BEGIN_REQUEST, 1, b"\x00\x01\x00\x00\x00\x00\x00\x00"),
        Record(RecordType.PARAMS, 1, b"\x01\x01Ab"),
        Record(RecordType.PARAMS, 1),
        Record(RecordType.STDIN, 1),
    ]


def test_get_values_exchange() -> None:
    conn = Connection()
    wire = conn.send(GetValues())
    assert decode_all([wire])[0].content == fcgi_wire.encode_pairs(
        [(name, "") for name in fcgi_wire.MANAGEMENT_NAMES]
    )
    reply = fcgi_wire.encode_record(
        RecordType.GET_VALUES_RESULT, 0, fcgi_wire.encode_pairs([("FCGI_MPXS_CONNS", "0")])
    )
    assert events_of(conn, reply, 1) == [ValuesResult({"FCGI_MPXS_CONNS": "0"})]
    assert conn.done


@pytest.mark.parametrize("names", [fcgi_wire.MANAGEMENT_NAMES, ("FCGI_MPXS_CONNS",), ("X" * 6,), ()])
def test_get_values_is_never_sent_without_padding(names: tuple) -> None:
    """libfcgi blocks before answering a management record that ends exactly
    where its read() ended; our own padding keeps it from doing so."""
    wire = Connection().send(GetValues(names))
    length, padding = struct.unpack("!HB", wire[4:7])
    assert padding >= 1
    assert (length + padding) % 8 == 0
    assert len(wire) == 8 + length + padding


def test_explicit_padding() -> None:
    wire = fcgi_wire.encode_record(RecordType.STDOUT, 1, b"x", padding=0)
    assert wire == header(6, 1, 1, 0) + b"x"
    with pytest.raises(fcgi_wire.LocalProtocolError):
        fcgi_wire.encode_record(RecordType.STDOUT, 1, b"x", padding=256)


def test_unknown_type_answer() -> None:
    conn = Connection()
    conn.send(GetValues())
    reply = fcgi_wire.encode_record(RecordType.UNKNOWN_TYPE, 0, b"\x09" + bytes(7))
    assert events_of(conn, reply) == [UnknownType(9)]


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (fcgi_wire.encode_record(RecordType.STDOUT, 2, b"x"), "request id 2, expected 1"),
        (fcgi_wire.encode_record(RecordType.PARAMS, 1, b""), "FCGI_PARAMS, a record only clients send"),
        (fcgi_wire.encode_record(42, 1, b""), "unknown record type 42"),
        (fcgi_wire.encode_record(RecordType.END_REQUEST, 1, bytes(3)), "body of 3 bytes, expected 8"),
        (
            fcgi_wire.encode_record(RecordType.END_REQUEST, 1, bytes(4) + b"\x09" + bytes(3)),
            "unknown protocolStatus 9",
        ),
        (fcgi_wire.encode_record(RecordType.GET_VALUES_RESULT, 0, b""), "unsolicited FCGI_GET_VALUES_RESULT"),
    ],
)
def test_connection_rejects_protocol_violations(wire: bytes, message: str) -> None:
    conn = responder()
    with pytest.raises(RemoteProtocolError, match=message):
        events_of(conn, wire)
    assert conn.state is fcgi_wire.State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_management_record_on_wrong_request_id() -> None:
    conn = Connection()
    conn.send(GetValues())
    with pytest.raises(RemoteProtocolError, match="request id 1 \\(management records use 0\\)"):
        events_of(conn, fcgi_wire.encode_record(RecordType.GET_VALUES_RESULT, 1, b""))


def test_eof_before_end_request_is_connection_closed() -> None:
    conn = responder()
    conn.receive_data(fcgi_wire.encode_record(RecordType.STDOUT, 1, b"half"))
    assert conn.next_event() == Stdout(b"half")
    conn.receive_data(b"")
    with pytest.raises(fcgi_wire.ConnectionClosed, match="before the reply was complete \\(16 bytes"):
        conn.next_event()


def test_reply_cap() -> None:
    conn = Connection(max_reply_bytes=100)
    conn.send(BeginRequest())
    conn.receive_data(bytes([1]) * 64)
    with pytest.raises(fcgi_wire.ReplyTooLarge, match="cap of 100 bytes"):
        conn.receive_data(bytes([1]) * 64)


# --- CGI output ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "status", "reason", "body"),
    [
        (b"Content-type: text/plain\r\n\r\npong", 200, "OK", b"pong"),
        (b"Content-type: text/plain\n\npong", 200, "OK", b"pong"),
        (
            b"Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nFile not found.\n",
            404,
            "Not Found",
            b"File not found.\n",
        ),
        (b"Status: 503\r\n\r\n", 503, "", b""),
        (b"Location: /elsewhere\r\n\r\n", 302, "Found", b""),
        (b"\r\n\r\nbody\r\n\r\nmore", 200, "OK", b"body\r\n\r\nmore"),
    ],
)
def test_cgi_output(stdout: bytes, status: int, reason: str, body: bytes) -> None:
    got = fcgi_wire.split_cgi_output(stdout)
    assert (got[0], got[1], got[3]) == (status, reason, body)


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"", "without the blank line"),
        (b"Content-type: text/plain\r\npong", "without the blank line"),
        (b"no colon here\r\n\r\n", "malformed CGI header line"),
        (b"Status: abc\r\n\r\n", "malformed CGI Status header"),
    ],
)
def test_bad_cgi_output(stdout: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        fcgi_wire.split_cgi_output(stdout)


def test_responder_query_raises_refusals() -> None:
    query = fcgi_wire.ResponderQuery({"SCRIPT_NAME": "/x"})
    end = fcgi_wire.EndRequest(0, ProtocolStatus.OVERLOADED)
    with pytest.raises(fcgi_wire.Overloaded, match="FCGI_OVERLOADED"):
        query.handle(end)


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        fcgi_wire.ProtocolError("x")


# --- the fast paths agree with the event path ------------------------------------------------


def old_split_model(stdout: bytes) -> tuple:
    """split_cgi_output as the pattern says it: the first \\r?\\n\\r?\\n."""
    import re  # noqa: PLC0415

    found = re.search(rb"\r?\n\r?\n", stdout[: fcgi_wire._response.MAX_HEADER_BYTES + 4])
    if found is None:
        return ("error",)
    return (found.start(), found.end())


HEADER_BLOCKS = [
    b"Content-type: text/plain\r\n\r\npong",
    b"Content-type: text/plain\n\npong",
    b"A: b\n\r\nbody",
    b"A: b\r\n\nbody",
    b"A: b\r\nC: d\n\nE: f\r\n\r\nbody",
    b"\r\n\r\nbody",
    b"\n\nbody",
    b"A: " + b"x" * 1020 + b"\r\n\r\nbody",  # the blank line across the first window's edge
    b"A: " + b"x" * 1019 + b"\n\nbody",
    b"A: " + b"x" * 5000 + b"\r\n\r\n" + b"y" * 70000,
    b"A: b\r\n" * 150 + b"\r\n" + b"\n\n" * 10,
    b"no end here\r\n" + b"z" * 70000,
]


@pytest.mark.parametrize("stdout", HEADER_BLOCKS, ids=range(len(HEADER_BLOCKS)))
def test_header_end_is_the_first_blank_line_in_any_window(stdout: bytes) -> None:
    expected = old_split_model(stdout)
    got = fcgi_wire._response._header_end(stdout, fcgi_wire._response.MAX_HEADER_BYTES + 4)
    assert (got if got is not None else ("error",)) == expected


@pytest.mark.parametrize("stdout", HEADER_BLOCKS, ids=range(len(HEADER_BLOCKS)))
def test_split_in_pieces_is_split_of_the_whole(stdout: bytes) -> None:
    def result(call):  # type: ignore[no-untyped-def]
        try:
            return call()
        except RemoteProtocolError as exc:
            return str(exc)

    whole = result(lambda: fcgi_wire.split_cgi_output(stdout))
    for cut in (1, 7, 100, len(stdout) // 2):
        pieces = [stdout[:cut], stdout[cut : cut * 3], stdout[cut * 3 :]]
        assert result(lambda p=pieces: fcgi_wire._response._split_pieces(p)) == whole  # type: ignore[misc]
    # Twice: the second time the header block is a known one.
    assert result(lambda: fcgi_wire.split_cgi_output(stdout)) == whole


REPLIES = [
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"Status: 404 Nope\r\nX: y\r\n\r\nbody")
    + fcgi_wire.encode_record(RecordType.STDERR, 1, b"warn")
    + fcgi_wire.encode_record(RecordType.STDOUT, 1)
    + END_OK,
    fcgi_wire.encode_stream(RecordType.STDOUT, 1, b"A: b\r\n\r\n" + b"x" * 70000) + END_OK,
    # PHP-FPM leaves its own bytes in the reserved part of END_REQUEST.
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"A: b\r\n\r\npong") + END_OK[:-3] + b"s m",
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"A: b\r\n\r\n") + END_OK + b"trailing junk",
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"A: b\r\n\r\n")
    + END_OK[:-8]
    + bytes([0, 0, 0, 7, 0, 0, 0, 0]),
    # Content that ends in what looks like END_REQUEST, but is not one.
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"A: b\r\n\r\n" + END_OK) + END_OK,
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"A: b\r\n\r\n")
    + fcgi_wire.encode_record(RecordType.END_REQUEST, 1, bytes(4) + b"\x02" + bytes(3)),
    fcgi_wire.encode_record(RecordType.STDOUT, 7, b"A: b\r\n\r\n") + END_OK,
    fcgi_wire.encode_record(RecordType.PARAMS, 1, b"") + END_OK,
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"A: b\r\n\r\n") + END_OK[:-1],
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
    fcgi_wire.encode_record(RecordType.STDOUT, 1, b"no blank line") + END_OK,
]


def via_events(wire: bytes, chunk: int) -> object:
    query = fcgi_wire.ResponderQuery({"SCRIPT_NAME": "/x"})
    conn = query.connection
    try:
        for start in range(0, len(wire), chunk):
            conn.receive_data(wire[start : start + chunk])
            while (event := conn.next_event()) is not NEED_DATA:
                result = query.handle(event)  # type: ignore[arg-type]
                if result is not None:
                    return result
        conn.receive_data(b"")
        while True:
            result = query.handle(conn.next_event())  # type: ignore[arg-type]
            if result is not None:
                return result
    except fcgi_wire.FastCGIError as exc:
        return type(exc), str(exc)


def via_receive_data(wire: bytes, chunk: int) -> object:
    query = fcgi_wire.ResponderQuery({"SCRIPT_NAME": "/x"})
    try:
        for start in range(0, len(wire), chunk):
            result = query.receive_data(wire[start : start + chunk])
            if result is not None:
                return result
        return query.receive_data(b"")
    except fcgi_wire.FastCGIError as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("chunk", [1, 7, 200, 1 << 20])
@pytest.mark.parametrize("wire", REPLIES, ids=range(len(REPLIES)))
def test_receive_data_gives_what_the_events_give(wire: bytes, chunk: int) -> None:
    assert via_receive_data(wire, chunk) == via_events(wire, chunk)


def test_send_request_is_the_three_events() -> None:
    params = {"SCRIPT_NAME": "/x", "Ü": "ß" * 200}
    for stdin in (b"", b"body", b"y" * 70000):
        conn = Connection(request_id=3)
        events = (
            conn.send(BeginRequest()) + conn.send(Params(tuple(params.items()))) + conn.send(Stdin(stdin))
        )
        for _ in range(2):  # the second time from what it remembers
            assert Connection(request_id=3).send_request(params, stdin) == events
            assert Connection(request_id=3).send_request(list(params.items()), stdin) == events


def test_send_request_sees_a_dict_changed_in_place() -> None:
    params = {"SCRIPT_NAME": "/one"}
    first = Connection().send_request(params)
    params["SCRIPT_NAME"] = "/two"
    second = Connection().send_request(params)
    assert b"/one" in first and b"/two" in second and b"/one" not in second
    keep = Connection().send_request(params, keep_conn=True)
    assert decode_all([keep])[0].content == b"\x00\x01\x01\x00\x00\x00\x00\x00"
    with pytest.raises(fcgi_wire.LocalProtocolError, match="one request per connection"):
        conn = Connection()
        conn.send_request(params)
        conn.send_request(params)


def test_unhashable_params_still_encode() -> None:
    wire = Connection().send_request([(b"A", bytearray(b"b"))])
    assert decode_all([wire])[1].content == b"\x01\x01Ab"
