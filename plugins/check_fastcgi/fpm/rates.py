"""Per-second rates of FPM's counters between two runs of the same check,
kept in a small JSON state file (see statefile for how it is kept safe);
or, for a long-running process (``check_fastcgi serve``), in its own memory
(MemoryRates), never in the state files of the one-shot checks.

What the file holds is never trusted: a sample that is not exactly what we
write (whole numbers in range, a finite time that is not in the future) is
treated as no sample at all, and replaced.
"""

from __future__ import annotations

import math
import os
import time

from fcgi_wire._values import TYPE_CHECKING

from ..statefile import StateFileError, open_state

if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

    from ..statefile import StrPath

COUNTERS = ("accepted_conn", "max_children_reached", "slow_requests")

#: Samples closer than this are not compared: one request in a millisecond
#: is "1000 req/s", true for that instant and useless to an operator. Such
#: runs (concurrent ones, mostly) leave the older sample as the reference.
MIN_INTERVAL = 1.0

#: A stored sample this far ahead of the wall clock was not written by a
#: run that overlaps this one: the clock went back, or the file was forged.
FUTURE_TOLERANCE = 5.0

#: FPM's counters are unsigned 64-bit at most; anything larger is not one.
_MAX_COUNTER = 2**64


def default_state_dir() -> str:
    """$XDG_STATE_HOME/check_fastcgi, else ~/.local/state/check_fastcgi when
    the home is writable, else a private directory in /var/tmp."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if xdg.startswith("/"):  # the XDG spec ignores relative paths
        return os.path.join(xdg, "check_fastcgi")
    home = os.environ.get("HOME") or _passwd_home()
    if home and home != "/" and os.access(home, os.W_OK):
        return os.path.join(home, ".local", "state", "check_fastcgi")
    # /var/tmp is shared: the store refuses this directory unless it is ours.
    return f"/var/tmp/check_fastcgi-{os.geteuid()}"  # noqa: S108


def _passwd_home() -> Optional[str]:
    """The home from the password database; a uid without an entry (a
    container's arbitrary uid) has none."""
    import pwd  # noqa: PLC0415 - only without $HOME

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


#: Characters a state file name keeps as they are; every other one is
#: written as _XX (its UTF-8 bytes in hex), "_" included, so the escaping is
#: one-to-one: targets that differ (``a_b.sock``, ``a/b.sock``) never share
#: a file.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-")
_MAX_NAME = 200


def _escaped(text: str) -> str:
    return "".join(
        char
        if char in _PLAIN
        else "".join(f"_{byte:02x}" for byte in char.encode("utf-8", "surrogateescape"))
        for char in text
    )


def state_file_name(target: str, path: str, pool: str) -> str:
    """The state file of a target, status path and pool: readable, and
    distinct for distinct keys. A key too long for a file name is hashed."""
    name = f"status-{_escaped(target)}-{_escaped(path)}-{_escaped(pool)}.json"
    if len(name) <= _MAX_NAME:
        return name
    import hashlib  # noqa: PLC0415 - rare, and a costly import for every run

    key = "\0".join((target, path, pool)).encode("utf-8", "surrogateescape")
    return f"status-{_escaped(target)[:80]}-{hashlib.sha256(key).hexdigest()}.json"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNTER


def _valid_sample(document: Optional[Dict[str, Any]], names: Tuple[str, ...]) -> Optional[Dict[str, Any]]:
    """The stored sample if it is exactly what we write, else None."""
    sample = document.get("sample") if document else None
    if not isinstance(sample, dict):
        return None
    moment, counters = sample.get("time"), sample.get("counters")
    if isinstance(moment, bool) or not isinstance(moment, (int, float)) or not math.isfinite(moment):
        return None
    if moment <= 0 or not _whole(sample.get("start_time")) or not isinstance(counters, dict):
        return None
    if not all(_whole(counters.get(name)) for name in names):
        return None
    return sample


def _compare(
    previous: Optional[Dict[str, Any]], sample: Dict[str, Any], now: float
) -> Tuple[bool, Dict[str, float], Optional[str]]:
    """(store this sample?, rates, why there are none)."""
    if previous is None:
        return True, {}, "no rates yet: first run"
    age = sample["time"] - previous["time"]
    if previous["time"] > now + FUTURE_TOLERANCE:
        return True, {}, "no rates: the stored sample was from the future (clock went back?); replaced"
    if age < 0:
        return False, {}, "no rates: the stored sample is newer (a concurrent run, or the clock went back)"
    if age < MIN_INTERVAL:
        return False, {}, f"no rates: the stored sample is under {MIN_INTERVAL:g} s old (a concurrent run?)"
    counters: Dict[str, int] = sample["counters"]
    before = {name: previous["counters"][name] for name in counters}
    if previous["start_time"] != sample["start_time"] or any(counters[n] < before[n] for n in counters):
        return True, {}, "no rates: the pool restarted since the last run"
    return True, {f"{name}_rate": (counters[name] - before[name]) / age for name in counters}, None


def rates(
    state_file: StrPath,
    start_time: int,
    counters: Dict[str, int],
    fetched_at: float,
    *,
    deadline: float,
    private_dir: bool = False,
) -> Tuple[Dict[str, float], Optional[str]]:
    """The rates since the previous sample, and why there are none when so.

    ``fetched_at`` is when the page was read (time.time()), so two runs that
    overlap compare the moments their figures are from. No rate on the
    first run, after a restart (other start time, or a counter went down),
    when a concurrent run already stored a newer sample, or when the state
    file cannot be used safely: no alert then, never a wrong one.
    ``deadline`` (time.monotonic()) bounds the wait for the lock.
    """
    sample = {"start_time": start_time, "time": fetched_at, "counters": counters}
    try:
        with open_state(state_file, deadline=deadline, private_dir=private_dir) as state:
            previous = _valid_sample(state.document, tuple(counters))
            store, found, why_not = _compare(previous, sample, time.time())
            if previous is None and (state.problem or state.document is not None):
                why_not = (
                    f"no rates: state file {state_file} {state.problem or 'held no valid sample; replaced'}"
                )
            if store:
                state.replace({"sample": sample})
    except StateFileError as exc:
        return {}, f"no rates: {exc}"
    except OSError as exc:
        return {}, f"no rates: state file {state_file}: {(exc.strerror or str(exc)).lower()}"
    return found, why_not


class MemoryRates:
    """The previous sample of one target, kept in this process's memory:
    what ``check_fastcgi serve`` passes to its status checks (through
    StatusOptions.rate_store) instead of a state file, so that its probes
    and the one-shot checks of the same pool never take each other's
    samples for their own. The same rules as the state file: no rate on the
    first sample, after a restart, or between samples under MIN_INTERVAL
    apart. One sample at a time (the latest key's), so a target whose page
    names ever new pools cannot make it grow; safe to use from threads.
    """

    def __init__(self) -> None:
        import threading  # noqa: PLC0415 - only a long-running process builds one

        self._lock = threading.Lock()
        self._key: Optional[str] = None
        self._sample: Optional[Dict[str, Any]] = None

    def rates(
        self, key: str, start_time: int, counters: Dict[str, int], fetched_at: float
    ) -> Tuple[Dict[str, float], Optional[str]]:
        """The rates since the previous sample of ``key`` (the status path
        and pool), and why there are none when so; the sample is kept as
        the next reference when the state file would keep it."""
        sample = {"start_time": start_time, "time": fetched_at, "counters": dict(counters)}
        with self._lock:
            previous = self._sample if self._key == key else None
            if previous is not None and set(previous["counters"]) != set(counters):
                previous = None  # a page that lost or gained a counter: start again
            store, found, why_not = _compare(previous, sample, time.time())
            if store:
                self._key, self._sample = key, sample
        if why_not == "no rates yet: first run":
            why_not = "no rates yet: the first sample of this process"
        return found, why_not
