"""A small JSON state file that a hostile local user cannot turn against us.

Root and the monitoring user run checks, and the state file's path or its
directory may be within reach of other users. So the store:

- walks to the directory from "/" one name at a time, each opened
  (O_NOFOLLOW) relative to the descriptor of the one above, so no symlink
  is followed anywhere in the chain, not even one swapped in between two
  steps; the path is normalised as written first (``..`` takes away the
  name before it, never a link's target);
- requires of every directory above the last one that it is not a symbolic
  link (an operator's own /home -> /srv/home too: name the real path),
  belongs to us or root, and that nobody else may write to it unless it is
  sticky (like /tmp, where others may add entries but not rename ours): a
  user who may rename what lies in a directory of the chain could put a
  directory of their choice below it, so such a chain is refused outright
  rather than raced;
- requires of the last directory that it belongs to us (or root) and that
  nobody else may write to it, sticky or not, and does everything relative
  to its descriptor;
- makes a missing directory itself, 0700, relative to its parent's
  descriptor, then opens it (O_NOFOLLOW) and checks it as private like the
  last one, also when someone else made it first;
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

#: The state directory: read, so its entries can be made and renamed.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: A directory above it is only passed through: O_PATH (Linux) needs search
#: permission alone, so a 0711 home still works for a user of its own.
_PASS_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

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


def _check_directory(info: os.stat_result, what: str) -> None:
    """The last directory, and any we had to make: ours or root's, and
    nobody else may write to it."""
    if not stat.S_ISDIR(info.st_mode):  # pragma: no cover - O_DIRECTORY saw to it
        raise StateFileError(f"{what} is not a directory")
    if info.st_uid not in (os.geteuid(), 0):
        raise StateFileError(f"{what} belongs to uid {info.st_uid}: use a directory of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateFileError(
            f"{what} is writable by others ({stat.filemode(info.st_mode)}): "
            "use a private directory (chmod go-w, or another --state-file)"
        )


def _check_ancestor(info: os.stat_result, what: str) -> None:
    """A directory above the last one: nobody but us and root may rename
    its entries. Sticky lets others add entries of their own but not touch
    ours (/tmp, /var/tmp)."""
    if info.st_uid not in (os.geteuid(), 0):
        raise StateFileError(
            f"{what} belongs to uid {info.st_uid}: "
            "choose another --state-file, in directories of your own or root's"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise StateFileError(
            f"{what} is writable by others ({stat.filemode(info.st_mode)}) and not sticky: "
            "choose another --state-file, or chmod go-w (or +t) it"
        )


def _open_step(parent: int, name: str, what: str, flags: int) -> int:
    """``name`` in ``parent``, a directory and no symlink; FileNotFoundError
    if there is nothing by that name."""
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    # O_NOFOLLOW|O_DIRECTORY fails a symlink with ENOTDIR, as it does a file:
    # look again, only to say which (it is refused either way).
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    link, directory = stat.S_ISLNK(mode), stat.S_ISDIR(mode)
    if link:
        raise StateFileError(
            f"{what} is a symbolic link; refusing to follow it: "
            "remove the link or choose another --state-file"
        )
    if directory:
        raise StateFileError(
            f"{what} changed as it was opened (a symbolic link swapped in and out?); refusing it: "
            "choose another --state-file"
        )
    raise StateFileError(f"{what} is not a directory: choose another --state-file")


def _open_directory(directory: str) -> int:
    """A descriptor of ``directory`` (absolute, normalised), reached from "/"
    without following a symlink and checked at every step (see the module
    docstring for what each step requires)."""
    names = [name for name in directory.split("/") if name]
    fd = os.open("/", _PASS_FLAGS if names else _DIR_FLAGS)
    try:
        for depth, name in enumerate(names):
            path = "/" + "/".join(names[: depth + 1])
            last = depth == len(names) - 1
            what = (
                f"state directory {path}" if last else f"{path} (on the path to state directory {directory})"
            )
            flags = _DIR_FLAGS if last else _PASS_FLAGS
            made = False
            try:
                child = _open_step(fd, name, what, flags)
            except FileNotFoundError:
                made = True
                # Made first by another run, or by someone else: checked below as if ours.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
                try:
                    child = _open_step(fd, name, what, flags)
                except FileNotFoundError:
                    raise StateFileError(f"{what} vanished as it was made (another process?)") from None
            os.close(fd)
            fd = child
            info = os.fstat(fd)
            # Whoever made it, a directory that was missing must now be
            # private: the stricter rule of the last directory.
            if last or made:
                _check_directory(info, what)
            else:
                _check_ancestor(info, what)
        if not names:
            _check_directory(os.fstat(fd), "state directory /")
        return fd
    except BaseException:
        os.close(fd)
        raise


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
        # abspath normalises: "." and "" components go, ".." takes away the
        # name before it, as written (no link is looked at to resolve it).
        directory, name = os.path.split(os.path.abspath(self.path))
        if (
            not name
            or name in (".", "..")
            or self.path.endswith(("/", "/.", "/.."))
            or self.path in ("", ".", "..")
        ):
            raise StateFileError(f"{self.path} names no file")
        dir_fd = _open_directory(directory)
        self._fds.append(dir_fd)
        try:
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
