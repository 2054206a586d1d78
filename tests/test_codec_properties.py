"""Properties of the codec, for any input hypothesis can think of.

`make test` runs a short campaign; `make fuzz` runs the same properties with
the "fuzz" profile (many more examples, no deadline).
"""

from __future__ import annotations

import contextlib
import os
from typing import List, Tuple, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fcgi_wire
from check_fastcgi.fpm.status_page import StatusPageError, parse_status
from fcgi_wire import NEED_DATA, Record, RecordDecoder, RemoteProtocolError

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MAX_RECORD = 8 + 65535 + 255


def long_bytes(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Long contents cheaply: a drawn head, then a drawn byte repeated
    (hypothesis draws st.binary byte by byte, far too slow at 64 KiB)."""
    return st.builds(
        lambda head, fill, size: (head + bytes([fill]) * size)[:size],
        st.binary(max_size=16),
        st.integers(0, 255),
        st.integers(low, high),
    )


records = st.builds(
    Record,
    type=st.integers(0, 255),
    request_id=st.integers(0, 0xFFFF),
    content=st.one_of(st.binary(max_size=300), long_bytes(65000, 65535)),
)
pair_text = st.one_of(st.binary(max_size=200), st.binary(min_size=127, max_size=129), long_bytes(1000, 70000))


@st.composite
def split_points(draw: st.DrawFn, data: bytes) -> List[bytes]:
    """The same bytes cut at arbitrary places."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


Outcome = Tuple[List[Record], Union[str, None]]


def decode(chunks: List[bytes]) -> Outcome:
    """Every record, then the protocol error's text if one ended it. Also
    checks the buffer never holds more than one partial record."""
    decoder = RecordDecoder()
    out: List[Record] = []
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            while (record := decoder.next_record()) is not None:
                out.append(record)
            assert decoder.buffered < MAX_RECORD
        decoder.feed_eof()
        while (record := decoder.next_record()) is not None:
            out.append(record)
    except RemoteProtocolError as exc:
        return out, str(exc)
    return out, None


@given(st.lists(records, max_size=4), st.data())
def test_records_round_trip_in_any_split(given_records: List[Record], data: st.DataObject) -> None:
    wire = b"".join(fcgi_wire.encode_record(r.type, r.request_id, r.content) for r in given_records)
    assert decode([wire]) == (given_records, None)
    assert decode(data.draw(split_points(wire))) == (given_records, None)


@given(st.lists(st.tuples(pair_text, pair_text), max_size=5))
def test_pairs_round_trip(pairs: List[Tuple[bytes, bytes]]) -> None:
    assert fcgi_wire.decode_pairs(fcgi_wire.encode_pairs(pairs)) == pairs


@given(st.binary(max_size=2000), st.data())
def test_any_bytes_decode_or_raise_the_same_way_however_split(wire: bytes, data: st.DataObject) -> None:
    whole = decode([wire])
    assert decode(data.draw(split_points(wire))) == whole
    assert decode([wire[i : i + 1] for i in range(len(wire))]) == whole


@st.composite
def record_soup(draw: st.DrawFn) -> bytes:
    """Mostly well-framed records of any type, id and content: what gets
    past the framing and reaches the connection's own checks."""
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            rtype = draw(st.sampled_from([3, 6, 7, 10, 11]))
            rid = draw(st.sampled_from([0, 1, 2]))
            content = draw(st.one_of(st.binary(max_size=40), st.just(bytes(8))))
            parts.append(fcgi_wire.encode_record(rtype, rid, content))
        else:
            parts.append(draw(st.binary(max_size=24)))
    return b"".join(parts)


def converse(chunks: List[bytes], with_request: bool, with_values: bool) -> List[str]:
    """What a client connection makes of the bytes: its events, then how it
    ended. Only fcgi_wire's own errors may end it."""
    conn = fcgi_wire.Connection(max_reply_bytes=1500)
    if with_values:
        conn.send(fcgi_wire.GetValues())
    if with_request:
        conn.send(fcgi_wire.BeginRequest())
    seen: List[str] = []
    try:
        # b"" means end of input to receive_data, so empty pieces are dropped.
        for chunk in [*(c for c in chunks if c), b""]:
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is NEED_DATA or event is fcgi_wire.CLOSED:
                    break
                seen.append(repr(event))
    except fcgi_wire.FastCGIError as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
    return seen


@given(st.one_of(record_soup(), st.binary(max_size=300)), st.booleans(), st.booleans(), st.data())
def test_connection_never_raises_anything_but_its_own_errors(
    wire: bytes, with_request: bool, with_values: bool, data: st.DataObject
) -> None:
    whole = converse([wire], with_request, with_values)
    split = converse(data.draw(split_points(wire)), with_request, with_values)
    # Events may be delivered in more pieces when split (stdout records are
    # events of their own), but the end is the same.
    assert split[-1:] == whole[-1:] or (not split and not whole)


@given(st.binary(max_size=500))
def test_pair_decoder_total(content: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        fcgi_wire.decode_pairs(content)


@given(st.lists(st.sampled_from([b"\r", b"\n", b"a", b":", b" "]), max_size=40).map(b"".join))
def test_header_end_finds_what_the_pattern_would(stdout: bytes) -> None:
    """The CGI header split finds the blank line with str.find, not a
    regex (compiling one costs every check's start-up): the same place."""
    import re  # noqa: PLC0415

    from fcgi_wire._response import _header_end  # noqa: PLC0415

    match = re.search(rb"\r?\n\r?\n", stdout)
    assert _header_end(stdout, len(stdout)) == (match.span() if match else None)


@given(st.binary(max_size=500))
def test_cgi_parser_total(stdout: bytes) -> None:
    try:
        status, _, _, _ = fcgi_wire.split_cgi_output(stdout)
    except RemoteProtocolError:
        return
    assert 100 <= status <= 999


page_pieces = st.sampled_from(
    [
        '{"pool":"www",',
        '"accepted conn":5,',
        '"idle processes":1,',
        '"active processes":1,',
        '"total processes":2,',
        '"processes":[',
        '{"pid":1,"state":"Running","request duration":',
        "18446744073709551507",
        '"request uri":"/a"b",',
        '"content length":0,',
        "}",
        "]",
        ",",
        '"',
        "\\",
        "\n",
        "{",
        "[",
        "1e999",
        "-1",
        "null",
    ]
)


@given(st.one_of(st.lists(page_pieces, max_size=30).map("".join).map(str.encode), st.binary(max_size=300)))
def test_status_parser_total(body: bytes) -> None:
    try:
        status = parse_status(body)
    except StatusPageError:
        return
    assert isinstance(status.pool, str)
    assert all(isinstance(value, int) for value in status.figures.values())
