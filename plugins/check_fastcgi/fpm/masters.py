"""The PHP-FPM masters running now, as /proc shows them.

FPM sets its master's title to ``php-fpm: master process (PATH)``. Any user
can give a process that title, so a master is only taken when every uid of
the process is root's or ours (``trust``); the others are returned as
refusals, one printable line each, for the caller to say on stderr.

A master's environment cannot be read: FPM moves it to make room for its
title, and /proc/PID/environ then holds only NUL bytes. So ``${VAR}`` in a
configuration stays unknown (``config_files``), never taken from ours.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Tuple

from fcgi_wire._values import Value

from ..text import printable
from .trust import process_uids, trusted_owner, user_name

_TITLE = re.compile(rb"php-fpm[\d.]*: master process \((/[^\0]+)\)\Z")


class RunningMaster(Value):
    pid: int
    config: str


def running_masters(proc: str = "/proc") -> Tuple[List[RunningMaster], List[str]]:
    """The trusted masters, and a line for each one skipped."""
    found: List[RunningMaster] = []
    skipped: List[str] = []
    for entry in _listdir(proc):
        if not entry.isdecimal():
            continue
        title = _read(os.path.join(proc, entry, "cmdline"), 4096)
        if title is None:
            continue
        match = _TITLE.match(title.rstrip(b"\0").replace(b"\0", b" "))
        if not match:
            continue
        pid = int(entry)
        uids = process_uids(pid, proc)
        config = match.group(1).decode("utf-8", "replace")
        if uids is None:
            continue  # gone while we looked
        strangers = [uid for uid in uids if not trusted_owner(uid)]
        if strangers:
            skipped.append(
                f"skipped the master with pid {pid}: its process belongs to {user_name(strangers[0])} "
                "(only root's or our own masters are read)"
            )
            continue
        if not config.isprintable():
            shown = printable(config)
            skipped.append(
                f"skipped the master with pid {pid}: its configuration path {shown} is not printable"
            )
            continue
        found.append(RunningMaster(pid, config))
    return found, skipped


def _read(path: str, limit: int) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _listdir(path: str) -> Iterable[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
