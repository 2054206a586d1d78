"""Whose configuration discover reads (SPEC section 11).

Root runs discover, and engines then run what it writes as root or as the
monitoring user. A file that another local user could have written, or
could swap, would let that user choose what root prints and runs. So a
configuration file is read only when:

- the file is owned by root or by us, and nobody else may write to it;
- every entry on the way to it, on the path as given and on the path its
  links resolve to, is owned by root or by us, and each directory is
  writable by nobody else, or sticky (as /tmp is: others may add entries
  there but not replace ours, and an entry of theirs fails the owner rule);
- it does not live under /proc, /sys or /dev, which hold no configuration
  and where reading has effects (/proc/kmsg consumes the kernel's log).

A master process is trusted when every one of its user ids is root's or
ours: the title of another user's process is theirs to choose.
"""

from __future__ import annotations

import os
import pwd
import stat
from typing import Dict, Optional, Tuple

#: Never configuration, whatever their owner says.
PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


_PSEUDO = "not read: /proc, /sys and /dev hold no configuration"


def trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _pseudo(path: str) -> bool:
    return any(path == top or path.startswith(top + "/") for top in PSEUDO_FILE_SYSTEMS)


def _writable_by_others(info: os.stat_result) -> bool:
    if stat.S_ISLNK(info.st_mode):
        return False  # a link's own mode means nothing; its owner and directory do
    if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX:
        return False  # sticky: others may add entries, not replace ours
    return bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


class Trust:
    """The rule above, with the verdict on each path prefix kept, since the
    files of one master share most of their directories."""

    def __init__(self) -> None:
        self._prefixes: Dict[str, Optional[str]] = {}

    @staticmethod
    def refusal_before_open(path: str) -> Optional[str]:
        """Opening a device can have effects of its own: some paths are
        refused before they are opened."""
        if _pseudo(os.path.abspath(path)) or _pseudo(os.path.realpath(path)):
            return _PSEUDO
        return None

    def refusal(self, fd: int, path: str) -> Optional[str]:
        """Why the file open as ``fd`` (found at ``path``) is not read, or
        None. Called after opening, so what is judged is what is read."""
        real = _opened_path(fd) or os.path.realpath(path)
        if _pseudo(os.path.abspath(path)) or _pseudo(real):
            return _PSEUDO
        info = os.fstat(fd)
        why = _owner_refusal(info, "it")
        if why:
            return why
        for chain in (os.path.abspath(path), real):
            why = self._chain_refusal(chain)
            if why:
                return why
        return None

    def _chain_refusal(self, path: str) -> Optional[str]:
        parts = path.split("/")
        for end in range(2, len(parts)):  # every directory and link above the file
            prefix = "/".join(parts[:end])
            if prefix not in self._prefixes:
                self._prefixes[prefix] = self._prefix_refusal(prefix)
            if self._prefixes[prefix]:
                return self._prefixes[prefix]
        return None

    @staticmethod
    def _prefix_refusal(prefix: str) -> Optional[str]:
        try:
            info = os.lstat(prefix)
        except OSError:
            return None  # judged by the open, which already succeeded
        # A link's target is judged through the resolved path.
        what = f"the link {prefix}" if stat.S_ISLNK(info.st_mode) else f"its directory {prefix}"
        return _owner_refusal(info, what)


def _owner_refusal(info: os.stat_result, what: str) -> Optional[str]:
    if not trusted_owner(info.st_uid):
        return (
            f"not read: {what} belongs to {user_name(info.st_uid)}; "
            "only root's (or our own) configuration is read"
        )
    if _writable_by_others(info):
        return f"not read: {what} is writable by others ({stat.filemode(info.st_mode)})"
    return None


def _opened_path(fd: int) -> Optional[str]:
    """The path of the file actually open, every link resolved (Linux)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def process_uids(pid: int, proc: str = "/proc") -> Optional[Tuple[int, ...]]:
    """The real, effective, saved and file-system uids of a process."""
    try:
        with open(os.path.join(proc, str(pid), "status"), "rb") as handle:
            for line in handle.read(16384).splitlines():
                if line.startswith(b"Uid:"):
                    return tuple(int(field) for field in line.split()[1:5])
    except (OSError, ValueError):
        return None
    return None
