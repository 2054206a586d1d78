"""Constants of the FastCGI 1.0 specification (Open Market, 1996).

Section numbers in the docstrings refer to that document.
"""

from __future__ import annotations

import enum
import struct

#: Section 3.3: the only protocol version there is.
VERSION = 1

#: Section 3.3: version, type, requestId, contentLength, paddingLength, reserved.
HEADER = struct.Struct("!BBHHBx")
HEADER_SIZE = HEADER.size

#: contentLength is 16 bits wide, so one record carries at most this much.
MAX_CONTENT = 0xFFFF

#: Section 3.3: management records use request id 0.
NULL_REQUEST_ID = 0

#: Section 4.1: the management variables a client may ask for.
FCGI_MAX_CONNS = "FCGI_MAX_CONNS"
FCGI_MAX_REQS = "FCGI_MAX_REQS"
FCGI_MPXS_CONNS = "FCGI_MPXS_CONNS"
MANAGEMENT_NAMES = (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS)


def _label(member: enum.IntEnum) -> str:
    """The spec's own spelling of a constant: FCGI_ plus the member name."""
    return f"FCGI_{member.name}"


class RecordType(enum.IntEnum):
    """Section 8: record types."""

    BEGIN_REQUEST = 1
    ABORT_REQUEST = 2
    END_REQUEST = 3
    PARAMS = 4
    STDIN = 5
    STDOUT = 6
    STDERR = 7
    DATA = 8
    GET_VALUES = 9
    GET_VALUES_RESULT = 10
    UNKNOWN_TYPE = 11

    # Not a mixin class: an enum with a mixin costs half as much again to
    # create, and every check creates these at start-up.
    @property
    def label(self) -> str:
        return _label(self)


#: Records only a client sends; a server sending one is a protocol error.
CLIENT_RECORD_TYPES = frozenset(
    {
        RecordType.BEGIN_REQUEST,
        RecordType.ABORT_REQUEST,
        RecordType.PARAMS,
        RecordType.STDIN,
        RecordType.DATA,
        RecordType.GET_VALUES,
    }
)

#: Section 3.4: management records, always on request id 0.
MANAGEMENT_RECORD_TYPES = frozenset(
    {RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE}
)


class Role(enum.IntEnum):
    """Section 5.1: the role asked for in FCGI_BEGIN_REQUEST."""

    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


class ProtocolStatus(enum.IntEnum):
    """Section 5.5: protocolStatus of FCGI_END_REQUEST."""

    REQUEST_COMPLETE = 0
    CANT_MPX_CONN = 1
    OVERLOADED = 2
    UNKNOWN_ROLE = 3

    @property
    def label(self) -> str:
        return _label(self)


#: Section 5.1: flags of FCGI_BEGIN_REQUEST.
FCGI_KEEP_CONN = 1

#: Section 5.1 and 5.5: bodies of BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE.
BEGIN_REQUEST_BODY = struct.Struct("!HB5x")
END_REQUEST_BODY = struct.Struct("!IB3x")
UNKNOWN_TYPE_BODY = struct.Struct("!B7x")
