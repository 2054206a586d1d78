"""Per-second rates of FPM's counters between two runs of the same check,
kept in a small JSON state file (nagiosplugin.Cookie: flock'd, written only
when the run gets through)."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import nagiosplugin

COUNTERS = ("accepted_conn", "max_children_reached", "slow_requests")

#: Samples closer than this are not compared: one request in a millisecond
#: is "1000 req/s", true for that instant and useless to an operator. Such
#: runs (concurrent ones, mostly) leave the older sample as the reference.
MIN_INTERVAL = 1.0


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/check_fastcgi, else ~/.local/state/check_fastcgi when
    the home is writable, else a private directory in /var/tmp."""
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]) / "check_fastcgi"
    home = os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    if home and home != "/" and os.access(home, os.W_OK):
        return Path(home) / ".local" / "state" / "check_fastcgi"
    # Shared, so rates() refuses it unless we own it (see _trusted).
    return Path("/var/tmp") / f"check_fastcgi-{os.getuid()}"  # noqa: S108


def _trusted(directory: Path) -> bool:
    """A directory someone else owns (a planted /var/tmp/check_fastcgi-UID)
    could swap the state file under us: only ours or root's will do."""
    owner = directory.stat().st_uid
    return owner in (os.getuid(), 0)


def state_file_name(target: str, path: str, pool: str) -> str:
    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.:-]+", "_", text).strip("_") or "_"

    return f"status-{clean(target)}-{clean(path)}-{clean(pool)}.json"


def _swap(state_file: Path, sample: Dict[str, Any]) -> Tuple[Any, Optional[str]]:
    """Store ``sample`` unless a newer one is there; return the one it
    replaces, or why there is nothing to compare with."""
    try:
        state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(state_file.parent):
            return None, f"no rates: state directory {state_file.parent} belongs to another user"
        # Create it ourselves (no truncation, no symlink followed): Cookie
        # would open a missing file with "w+", which truncates what a
        # concurrent run may just have written.
        os.close(os.open(state_file, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        # Not `with Cookie(...)`: its __enter__ leaves the file open when the
        # content is corrupt (it truncates, then raises).
        cookie = nagiosplugin.Cookie(str(state_file))
        try:
            cookie.open()  # flock: concurrent runs take turns from here
            previous = cookie.get("sample")
            age = _age(previous, sample)
            if age is not None and age < 0:
                return None, "no rates: the stored sample is newer (a concurrent run, or the clock went back)"
            if age is not None and age < MIN_INTERVAL:
                return (
                    None,
                    f"no rates: the stored sample is under {MIN_INTERVAL:g} s old (a concurrent run?)",
                )
            cookie["sample"] = sample
            cookie.commit()
        finally:
            cookie.close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return None, f"no rates: state file {state_file}: {reason}"
    return previous, None if isinstance(previous, dict) else "no rates yet: first run"


def _age(previous: Any, sample: Dict[str, Any]) -> Optional[float]:
    """Seconds from the stored sample to this one; None when unreadable."""
    try:
        return float(sample["time"]) - float(previous["time"])
    except (KeyError, TypeError, ValueError):
        return None


def _since(previous: Dict[str, Any], sample: Dict[str, Any]) -> Tuple[Dict[str, float], Optional[str]]:
    counters: Dict[str, int] = sample["counters"]
    try:
        before = {name: int(previous["counters"][name]) for name in counters}
        elapsed = sample["time"] - float(previous["time"])
        restarted = previous["start_time"] != sample["start_time"]
    except (KeyError, TypeError, ValueError):
        return {}, "no rates: previous sample unreadable"
    if restarted or any(counters[name] < before[name] for name in counters):
        return {}, "no rates: the pool restarted since the last run"
    if elapsed <= 0:
        return {}, "no rates: the clock did not advance"
    return {f"{name}_rate": (counters[name] - before[name]) / elapsed for name in counters}, None


def rates(
    state_file: Path, start_time: int, counters: Dict[str, int], fetched_at: float
) -> Tuple[Dict[str, float], Optional[str]]:
    """The rates since the previous sample, and why there are none when so.

    ``fetched_at`` is when the page was read (time.time()), so two runs that
    overlap compare the moments their figures are from. No rate on the
    first run, after a restart (other start time, or a counter went down),
    when the clock went backwards, or when a concurrent run already stored a
    newer sample: no alert then, never a wrong one.
    """
    sample = {"start_time": start_time, "time": fetched_at, "counters": counters}
    previous, why_not = _swap(state_file, sample)
    if why_not:
        return {}, why_not
    return _since(previous, sample)
