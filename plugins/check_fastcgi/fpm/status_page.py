"""PHP-FPM's JSON status page: fetched (``fetch_status``, the one fetch of
the status mode and of serve's /metrics) and read with the tolerance it
needs.

FPM prints the path part of ``request uri``, ``user`` and ``script`` without
escaping, so the page can be invalid JSON; ``request duration`` can wrap to
about 1.8e19; new process states appear. None of that may cost the pool's
figures.

What can go wrong once FPM answered is told apart by type, a fact each,
for the caller to word: NoStatusPage (HTTP 403 or 404: no page at that
path), StatusPageHTTPError (another status than 200) and NotAStatusPage
(a 200 whose body is no status page), all StatusPageErrors.
"""

from __future__ import annotations

import json
import re

from fcgi_wire._values import TYPE_CHECKING, Value

from ..cgi_params import build_params
from ..text import printable

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    import fcgi_wire

    from ..target import Target

#: JSON key -> metric name, for the pool-wide figures.
POOL_FIELDS = {
    "accepted conn": "accepted_conn",
    "listen queue": "listen_queue",
    "max listen queue": "max_listen_queue",
    "listen queue len": "listen_queue_len",
    "idle processes": "idle_processes",
    "active processes": "active_processes",
    "total processes": "total_processes",
    "max active processes": "max_active_processes",
    "max children reached": "max_children_reached",
    "slow requests": "slow_requests",
    "start since": "start_since",
    "memory peak": "memory_peak",  # PHP 8.4 and later
}
REQUIRED = ("accepted conn", "idle processes", "active processes", "total processes")

# A duration this large is a negative one that wrapped around (unsigned).
_WRAPPED = 2**63

# Counters and gauges are unsigned 64-bit in FPM; a larger number is none
# of its figures (and would overflow a float in active_percent).
_MAX_FIGURE = 2**64

# Fields FPM prints raw, each between its key and the key FPM always
# prints next. Found with str.find, from one marker to the next, so a page
# is repaired in linear time whatever it holds (a regex with a lazy .*?
# rescanned to the end of the page for every unterminated field).
_RAW_FIELDS = (
    ('"request uri":"', '","content length":'),
    ('"user":"', '","script":"'),
    ('"script":"', '","last request cpu":'),
)
# Patterns for salvaging the pool figures of a page beyond repair (strings:
# compiled only when a page needs them). At most 19 digits: a longer
# "number" is no FPM figure, and int() of a huge one is slow or refused.
_TOP_LEVEL_NUMBER = r'"([a-z ]+)":(\d{1,19})(?![\d.eE])'
_TOP_LEVEL_STRING = r'"(pool|process manager)":"([^"]*)"'


#: How much of an answer that is no status page an error keeps to show.
EXCERPT_BYTES = 400


class StatusPageError(ValueError):
    """FPM answered, but not with a status page (see the subclasses)."""


class NoStatusPage(StatusPageError):
    """HTTP 403 or 404: no status page at that path (pm.status_path unset,
    or another path)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class StatusPageHTTPError(StatusPageError):
    """Another HTTP status than 200, 403 or 404; ``excerpt`` is the start of
    the body, decoded, not yet made printable."""

    def __init__(self, status: int, excerpt: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.excerpt = excerpt


class NotAStatusPage(StatusPageError):
    """A body that is no PHP-FPM JSON status page; str() says why, and
    ``excerpt`` is the start of the body when it is known."""

    def __init__(self, reason: str, excerpt: str = "") -> None:
        super().__init__(reason)
        self.excerpt = excerpt


class Process(Value):
    pid: int
    state: str
    request_duration: float  # seconds
    request_method: str
    request_uri: str
    requests: int = 0
    last_request_cpu: float = 0.0  # percent
    last_request_memory: int = 0  # bytes


class PoolStatus(Value):
    pool: str
    process_manager: str
    start_time: int
    figures: Dict[str, int]
    repairs: List[str]
    processes: Optional[List[Process]] = None  # None: not asked for, or unreadable


def longest_running(processes: List[Process], own_uri: str) -> Optional[Process]:
    """The process whose request has run longest, among those in state
    Running, leaving out the status request that asked (``own_uri``)."""
    running = [p for p in processes if p.state == "Running" and p.request_uri != own_uri]
    return max(running, key=lambda p: p.request_duration, default=None)


def _escape_raw(raw: str) -> str:
    # Already valid when FPM escaped it itself (the query part is escaped).
    return raw if _parse(f'"{raw}"') is not None else json.dumps(raw)[1:-1]


def _repair_field(text: str, key: str, next_key: str) -> str:
    """Escape every value between ``key`` and ``next_key``."""
    parts = []
    position = 0
    while True:
        start = text.find(key, position)
        if start < 0:
            break
        value_start = start + len(key)
        end = text.find(next_key, value_start)
        if end < 0:
            break  # no later value can be terminated either
        parts.append(text[position:value_start])
        parts.append(_escape_raw(text[value_start:end]))
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _parse(text: str) -> Any:
    """json.loads, or None. strict=False lets raw control characters (a
    newline in a URI) through; deep nesting raises RecursionError, and a
    number past Python's digit limit a ValueError: neither is a page."""
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return None


def _load(text: str, repairs: List[str]) -> Any:
    document = _parse(text)
    if document is not None:
        return document
    repaired = text
    for key, next_key in _RAW_FIELDS:
        repaired = _repair_field(repaired, key, next_key)
    document = _parse(repaired)
    if document is None:
        return None
    repairs.append("escaped characters FPM printed raw in request uri/user/script")
    return document


def _salvage(text: str, repairs: List[str]) -> Dict[str, Any]:
    """The pool figures of a page whose process list defeats repair."""
    head = text.split('"processes"', 1)[0]
    document: Dict[str, Any] = {key: int(value) for key, value in re.findall(_TOP_LEVEL_NUMBER, head)}
    document.update(dict(re.findall(_TOP_LEVEL_STRING, head)))
    repairs.append("process list unreadable (invalid JSON); pool figures read alone")
    return document


def _int(document: Dict[str, Any], key: str) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise NotAStatusPage(f"{key!r} is {printable(repr(value), 40)}, not a whole number")
    if not 0 <= value < _MAX_FIGURE:
        raise NotAStatusPage(f"{key!r} is {printable(str(value), 24)}, out of range for an FPM figure")
    return value


def _text(value: Any, default: str = "-") -> str:
    """A string field as text that encodes: JSON's \\ud800 escapes give lone
    surrogates, which UTF-8 cannot encode (a Prometheus scrape of every
    target would fail on one pool's label). Bounded: a label or a line
    needs no more."""
    text = value if isinstance(value, str) else default if value is None else str(value)
    return text[:_MAX_TEXT].encode("utf-8", "replace").decode("utf-8")


def _count(value: Any) -> int:
    """A per-process count, or 0 when FPM printed '-' or nonsense."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_FIGURE else 0


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if 0 <= value < 1e15 else 0.0


#: What a string field of the page is cut to: FPM's own are far shorter.
_MAX_TEXT = 4096


def _processes(raw: Any, repairs: List[str]) -> Optional[List[Process]]:
    if not isinstance(raw, list):
        return None
    processes = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        duration = entry.get("request duration")
        duration = duration if isinstance(duration, int) and duration >= 0 else 0
        if duration >= _WRAPPED:
            repairs.append(f"request duration of pid {entry.get('pid')} wrapped around; counted as 0")
            duration = 0
        processes.append(
            Process(
                pid=_count(entry.get("pid")),
                state=_text(entry.get("state")),
                request_duration=duration / 1_000_000,
                request_method=_text(entry.get("request method")),
                request_uri=_text(entry.get("request uri")),
                requests=_count(entry.get("requests")),
                last_request_cpu=_number(entry.get("last request cpu")),
                last_request_memory=_count(entry.get("last request memory")),
            )
        )
    return processes


def status_query(full: bool) -> str:
    """The QUERY_STRING that asks FPM for its JSON page (and the process
    list with ``full``)."""
    return "json&full" if full else "json"


def fetch_status(target: Target, path: str, full: bool) -> Tuple[fcgi_wire.Response, PoolStatus]:
    """Request the status page at ``path`` and read it: the response and
    the page. Raises fcgi_wire's errors (no answer) and StatusPageError's
    subclasses (an answer that is no status page)."""
    response = target.request(build_params(path, query=status_query(full)))
    if response.status in (403, 404):
        raise NoStatusPage(response.status)
    if response.status != 200:
        raise StatusPageHTTPError(response.status, _excerpt(response.body))
    try:
        return response, parse_status(response.body)
    except NotAStatusPage as exc:
        raise NotAStatusPage(str(exc), _excerpt(response.body)) from None


def _excerpt(body: bytes) -> str:
    return body[:EXCERPT_BYTES].decode("utf-8", "replace")


def parse_status(body: bytes) -> PoolStatus:
    """The page in ``body``; NotAStatusPage when it is none."""
    text = body.decode("utf-8", errors="replace")
    repairs: List[str] = []
    document = _load(text, repairs)
    if document is None:
        if not text.lstrip().startswith("{") or '"pool"' not in text:
            raise NotAStatusPage("not JSON")
        document = _salvage(text, repairs)
    if not isinstance(document, dict) or "pool" not in document:
        raise NotAStatusPage("JSON, but not a PHP-FPM status page (no 'pool')")
    missing = [key for key in REQUIRED if key not in document]
    if missing:
        raise NotAStatusPage(f"status page without {', '.join(repr(key) for key in missing)}")
    figures = {metric: _int(document, key) for key, metric in POOL_FIELDS.items() if key in document}
    return PoolStatus(
        pool=_text(document["pool"]),
        process_manager=_text(document.get("process manager")),
        start_time=_count(document.get("start time")),
        figures=figures,
        processes=_processes(document.get("processes"), repairs),
        repairs=repairs,
    )
