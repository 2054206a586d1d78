"""A small JSON state file that a hostile local user cannot turn against us.

Root and the monitoring user run checks, and the state file's path or its
directory may be within reach of other users. So the store:

- opens the directory once (O_NOFOLLOW) and does everything relative to
  that descriptor, after checking that it is a real directory owned by us
  (or root) that nobody else may write to;
- opens the state file once (O_NOFOLLOW, O_NONBLOCK: no symlink, no FIFO
  hang) and requires a regular file we own with a single link;
- reads at most ``MAX_BYTES`` and never trusts what it reads: the caller
  gets a JSON object or nothing;
- never writes into an existing file: a new document goes to a fresh
  temporary file in the same directory that is renamed over the old one, so
  a reader never sees half a file and a link planted at the path is
  replaced, never followed;
- refuses to replace a non-empty file that is not one of ours (an operator's
  ``--state-file`` typo must not clobber /etc/something), except in the
  private directory it created itself;
- takes turns through a lock file without blocking past the deadline.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time

from fcgi_wire._values import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Union

    StrPath = Union[str, "os.PathLike[str]"]

#: Our own state documents are a few hundred bytes.
MAX_BYTES = 64 * 1024

#: The first key of every document we write, so a file can be told ours
#: from its first bytes. Files from before it start with ``{"sample"``.
FORMAT_KEY = "check_fastcgi_state"
FORMAT_VERSION = 1
_OUR_PREFIXES = (b'{"' + FORMAT_KEY.encode() + b'"', b'{"sample"')

#: Time kept back from the deadline for reporting, when waiting for the lock.
_LOCK_MARGIN = 0.2
_LOCK_POLL = 0.01


class StateFileError(Exception):
    """The state file cannot be used; the text says why and, where it can,
    what to do about it."""


class StateFile:
    """An open, locked state file; use through ``open_state``."""

    def __init__(self, dir_fd: int, path: str, private_dir: bool) -> None:
        self._dir_fd = dir_fd
        self.path = path
        self.name = os.path.basename(path)
        self._private_dir = private_dir
        #: Why ``document`` is None although a file was there, if so.
        self.problem: Optional[str] = None
        self.document = self._read()

    def _read(self) -> Optional[Dict[str, Any]]:
        try:
            fd = os.open(
                self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self._dir_fd
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateFileError(f"state file {self.path} is a symbolic link; refusing it") from None
            raise
        try:
            info = os.fstat(fd)
            _check_file(info, f"state file {self.path}")
            data = _read_at_most(fd, MAX_BYTES + 1)
        finally:
            os.close(fd)
        if not data:
            return None
        ours = self._private_dir or data.startswith(_OUR_PREFIXES)
        if not ours:
            raise StateFileError(
                f"state file {self.path} holds something else ({info.st_size} bytes, "
                "not a check_fastcgi state file); refusing to overwrite it: "
                "remove it or choose another --state-file"
            )
        if len(data) > MAX_BYTES:
            self.problem = f"was larger than {MAX_BYTES} bytes; replaced"
            return None
        document = _parse(data)
        if document is None:
            self.problem = "was not valid JSON; replaced"
        return document

    def replace(self, document: Dict[str, Any]) -> None:
        """Store ``document`` atomically (temporary file, fsync, rename)."""
        body = json.dumps({FORMAT_KEY: FORMAT_VERSION, **document}, allow_nan=False).encode()
        temporary = f".{self.name}.{os.urandom(6).hex()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=self._dir_fd)
        try:
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self._dir_fd)
            raise


def _check_file(info: os.stat_result, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise StateFileError(f"{what} is not a regular file; refusing it")
    if info.st_uid != os.geteuid():
        raise StateFileError(f"{what} belongs to uid {info.st_uid}, not to us (uid {os.geteuid()})")
    if info.st_nlink == 0:
        raise StateFileError(f"{what} was replaced while being read (another process?)")
    if info.st_nlink != 1:
        raise StateFileError(f"{what} has {info.st_nlink} hard links; refusing a file that may be another's")


def _check_directory(info: os.stat_result, directory: str) -> None:
    if not stat.S_ISDIR(info.st_mode):  # pragma: no cover - O_DIRECTORY saw to it
        raise StateFileError(f"state directory {directory} is not a directory")
    if info.st_uid not in (os.geteuid(), 0):
        raise StateFileError(
            f"state directory {directory} belongs to uid {info.st_uid}: use a directory of your own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateFileError(
            f"state directory {directory} is writable by others ({stat.filemode(info.st_mode)}): "
            "use a private directory (chmod go-w, or another --state-file)"
        )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number we store")


def _parse(data: bytes) -> Optional[Dict[str, Any]]:
    """A JSON object, or None: NaN, Infinity, deep nesting and numbers past
    Python's digit limit all mean "not a document of ours"."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _lock(dir_fd: int, path: str, deadline: float) -> int:
    """A private lock file beside the state file, locked without blocking
    past ``deadline`` (time.monotonic()). The state file itself cannot be
    the lock: it is replaced by rename, so a waiter would lock the old one."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    lock = f"{os.path.basename(path)}.lock"
    try:
        fd = os.open(lock, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateFileError(f"lock file {path}.lock is a symbolic link; refusing it") from None
        raise
    try:
        _check_file(os.fstat(fd), f"lock file {path}.lock")
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() + _LOCK_POLL > deadline - _LOCK_MARGIN:
                    raise StateFileError(
                        f"state file {path} is locked by another process (a run still going?)"
                    ) from None
                time.sleep(_LOCK_POLL)
    except BaseException:
        os.close(fd)
        raise


class open_state:
    """``with open_state(path, deadline=..., private_dir=...) as state:``
    gives a locked ``StateFile``; raises StateFileError (or OSError) when
    the file cannot be used safely.

    ``private_dir``: the directory is our own default one, so whatever lies
    in it is ours to replace.
    """

    def __init__(self, path: StrPath, *, deadline: float, private_dir: bool = False) -> None:
        self.path = os.fspath(path)
        self.deadline = deadline
        self.private_dir = private_dir
        self._fds: List[int] = []

    def __enter__(self) -> StateFile:
        directory, name = os.path.split(os.path.abspath(self.path))
        if (
            not name
            or name in (".", "..")
            or self.path.endswith(("/", "/.", "/.."))
            or self.path in (".", "..")
        ):
            raise StateFileError(f"{self.path} names no file")
        # Missing directories are made private; an existing one is checked below.
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StateFileError(
                    f"state directory {directory} is a symbolic link or not a directory; refusing it"
                ) from None
            raise
        self._fds.append(dir_fd)
        try:
            _check_directory(os.fstat(dir_fd), directory)
            self._fds.append(_lock(dir_fd, self.path, self.deadline))
            return StateFile(dir_fd, self.path, self.private_dir)
        except BaseException:
            self._close()
            raise

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
