"""PHP-FPM's configuration, read as FPM reads it, to find its pools.

The ini syntax FPM accepts (php-src ``fpm_conf.c`` on the Zend ini
scanner): ``[global]`` and ``[POOL]`` sections, ``;`` comments, values quoted
or bare, ``$pool`` replaced by the pool's name, ``${VAR}`` by FPM's
environment (unknown to us: such a value is a problem), and ``include = GLOB`` (in ``[global]`` only: FPM
refuses it in a pool). Whatever cannot be read (a file, a line, a pool) is
one problem naming the file and line and why, never quoting the line (the
file may be one that only root can read); the rest is still read.

Only files that ``trust`` accepts are read. One ``Budget`` bounds a whole
discovery, every master together: files, bytes, pools, settings, glob
matches and time. An include that leads back to a file already read (a
symlink loop, a glob matching its own file) is read once.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import stat
import time
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple

from fcgi_wire._values import Value

from ..text import printable
from .globbing import OVER_LIMIT, bounded_glob
from .trust import Trust

MAX_FILE_BYTES = 1024 * 1024
#: The budget of one discovery, over every master together.
MAX_FILES = 1000
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_POOLS = 2000
MAX_GLOB_MATCHES = 5000
MAX_SECONDS = 5.0
MAX_PROBLEMS = 200
#: FPM's own pool settings number about sixty; php_value[...] lines add more.
MAX_SETTINGS_PER_POOL = 1000

#: Where PHP-FPM's main configuration lives: Debian and Ubuntu (one per PHP
#: version), the official PHP container images, RHEL and Fedora, and
#: FreeBSD's ports. Relative to a root, "/" on a host.
DEFAULT_CONFIGS = (
    "etc/php/*/fpm/php-fpm.conf",
    "usr/local/etc/php-fpm.conf",
    "etc/php-fpm.conf",
    "etc/opt/remi/php*/php-fpm.conf",
)

#: A pool name, as long as anyone gives one (it becomes part of service names).
MAX_NAME = 128
#: What FPM takes as a key: pm.max_children, php_admin_value[error_log], env[PATH].
_KEY = re.compile(r"[A-Za-z0-9_.\-]+(\[[^\]\s=]*\])?\Z")
#: Keys a problem may name: FPM's own that discover reads.
_SHOWN_KEYS = frozenset(
    (
        "listen",
        "pm",
        "pm.max_children",
        "pm.status_path",
        "pm.status_listen",
        "ping.path",
        "ping.response",
        "include",
        "user",
        "group",
        "listen.owner",
        "listen.group",
        "listen.mode",
    )
)
_VERSION = re.compile(r"/php/(\d+\.\d+)/fpm/|/php(\d)(\d)/|php-fpm(\d+\.\d+)")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Problem(Value):
    """Something in the configuration that stops a pool (or a file) from
    being read, where FPM itself would refuse it."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        """One printable line, whatever a file name holds: problems reach
        stderr, the table and comments in engine configurations."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        return printable(f"{where}: {self.text}", 400)


class PoolConfig(Value):
    """One pool as configured."""

    name: str
    file: str
    line: int
    master: str  # the php-fpm.conf it was reached from
    version: str  # PHP version when the layout tells it ("8.2"), else ""
    settings: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.settings.get(key, default)


class Reading:
    """What one master configuration gave: its pools and its problems."""

    def __init__(self, master: str) -> None:
        self.master = master
        self.pools: List[PoolConfig] = []
        self.problems: List[Problem] = []
        self.files: List[str] = []


def php_version(path: str) -> str:
    """8.2 from /etc/php/8.2/fpm/..., /usr/sbin/php-fpm8.2, /etc/opt/remi/php82/..."""
    match = _VERSION.search(path)
    if not match:
        return ""
    if match.group(1):
        return match.group(1)
    if match.group(2):
        return f"{match.group(2)}.{match.group(3)}"
    return match.group(4)


class Budget:
    """What one discovery may spend, over all its masters: an include glob
    of symlink loops, or many masters including the same large files, ends
    at these bounds instead of taking the host's memory and time."""

    def __init__(
        self,
        *,
        files: int = MAX_FILES,
        total_bytes: int = MAX_TOTAL_BYTES,
        pools: int = MAX_POOLS,
        matches: int = MAX_GLOB_MATCHES,
        seconds: float = MAX_SECONDS,
        stop: Optional[Callable[[], bool]] = None,
    ) -> None:
        self.files = files
        self.bytes = total_bytes
        self.pools = pools
        self.matches = matches
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self._stop = stop
        self.problems = MAX_PROBLEMS
        self.trust = Trust()
        self._said: Set[str] = set()

    def spent(self) -> Optional[str]:
        """Why nothing more may be read (time, or a stop signal), or None."""
        if self._stop is not None and self._stop():
            return "stopped by a signal"
        if time.monotonic() > self.deadline:
            return f"discovery took longer than {self.seconds:g} s"
        return None

    def first_time(self, reason: str) -> bool:
        """Whether this reason is new: each limit is said once."""
        if reason in self._said:
            return False
        self._said.add(reason)
        return True


def read_master(path: str, budget: Optional[Budget] = None) -> Reading:
    """The pools of one FPM master configuration file, includes followed."""
    reader = _Reader(path, budget or Budget())
    reader.read_file(path, depth=0)
    reader.finish()
    return reader.reading


#: What header() returns for a line that is no section header at all, and
#: for a section whose name it refuses (its settings are read into nothing).
_NOT_A_HEADER = "\0not a header"
_REFUSED = "\0refused"


class _Reader:
    """One master's reading in progress: files seen (by device and inode,
    so a loop is read once) and pool names taken."""

    def __init__(self, master: str, budget: Budget) -> None:
        self.reading = Reading(master)
        self.budget = budget
        self.seen: Dict[Tuple[int, int], str] = {}
        self.sections: Dict[str, Tuple[str, int, Dict[str, str]]] = {}

    def problem(self, path: str, line: int, text: str) -> None:
        """A problem, while the budget's count of them lasts (a large file
        of garbage would otherwise be a line of output per line)."""
        self.budget.problems -= 1
        if self.budget.problems >= 0:
            self.reading.problems.append(Problem(path, line, text))
        elif self.budget.problems == -1:
            self.reading.problems.append(
                Problem(path, line, f"more than {MAX_PROBLEMS} problems: the rest are not listed")
            )

    def over_budget(self, path: str, line: int, reason: Optional[str]) -> bool:
        """Whether ``reason`` stops the reading (said once per discovery)."""
        if reason is None:
            return False
        if self.budget.first_time(reason):
            self.problem(path, line, f"not read, nor anything after it: {reason}")
        return True

    def read_file(self, path: str, depth: int) -> None:
        text = self.load(path)
        if text is None:
            return
        section: Optional[str] = None  # None: before any section, or [global]
        section_line = 0
        settings: Dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            if number % 1024 == 0 and self.over_budget(path, number, self.budget.spent()):
                break
            line = raw.strip()
            if not line or line.startswith((";", "#")):
                continue
            if not line.startswith("["):
                self.setting(line, path, number, section=section, settings=settings, depth=depth)
                continue
            name = self.header(line, path, number)
            if name is not _NOT_A_HEADER:
                self.close(section, section_line, settings, path)
                section, section_line, settings = name, number, {}
        self.close(section, section_line, settings, path)

    def header(self, line: str, path: str, number: int) -> Optional[str]:
        """A pool's name; None for [global]; _REFUSED for a name with
        control characters; _NOT_A_HEADER for garbage."""
        end = line.find("]")
        name = line[1:end].strip() if end > 0 else ""
        if end < 0 or not name:
            self.problem(path, number, "not a section header")
            return _NOT_A_HEADER
        if not name.isprintable() or len(name) > MAX_NAME:
            # A name that would carry escapes into every output is no pool
            # of ours; and it is not quoted, as no content of a file is.
            self.problem(path, number, f"a pool name with control characters or over {MAX_NAME} characters")
            return _REFUSED
        return None if name == "global" else name

    def setting(
        self,
        line: str,
        path: str,
        number: int,
        *,
        section: Optional[str],
        settings: Dict[str, str],
        depth: int,
    ) -> None:
        if section is _REFUSED:
            return
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not _KEY.match(key):
            self.problem(path, number, "not a setting (KEY = VALUE)")
            return
        # Only FPM's own names are repeated in a problem: a key is content too.
        shown = key if key in _SHOWN_KEYS else "a setting"
        value = _value(value)
        if _ENV.search(value):
            # FPM takes ${VAR} from its own environment, which no process
            # can read back (FPM overwrites it with its title); ours is not
            # FPM's, and may hold secrets.
            self.problem(path, number, f"{shown} uses an environment variable, which only FPM knows")
        elif not value.isprintable():
            self.problem(path, number, f"{shown}: the value has control characters")
        elif key != "include":
            if section is not None:
                if len(settings) >= MAX_SETTINGS_PER_POOL and key not in settings:
                    if self.budget.first_time(f"settings of [{section}]"):
                        self.problem(path, number, f"more than {MAX_SETTINGS_PER_POOL} settings in one pool")
                    return
                settings[key] = value.replace("$pool", section)
        elif section is not None:
            self.problem(path, number, f"include in pool [{section}]: FPM allows it in [global] only")
        else:
            self.include(value, path, number, depth)

    def close(self, section: Optional[str], line: int, settings: Dict[str, str], path: str) -> None:
        if section is not None and section is not _REFUSED:
            self.add_pool(section, line, settings, path)

    def load(self, path: str) -> Optional[str]:
        budget = self.budget
        if budget.files <= 0:
            self.over_budget(path, 0, f"more than {MAX_FILES} configuration files")
            return None
        if self.over_budget(path, 0, budget.spent()):
            return None
        try:
            refusal, data = self._read_bytes(path)
        except OSError as exc:
            refusal, data = f"cannot read: {(exc.strerror or str(exc)).lower()}", None
        if refusal:
            self.problem(path, 0, refusal)
        if data is None:
            return None
        budget.files -= 1
        if len(data) > budget.bytes:
            self.over_budget(path, 0, f"more than {MAX_TOTAL_BYTES // (1024 * 1024)} MiB of configuration")
            budget.bytes = 0
            return None
        budget.bytes -= len(data)
        self.reading.files.append(path)
        return data.decode("utf-8", "replace")

    def _read_bytes(self, path: str) -> Tuple[Optional[str], Optional[bytes]]:  # noqa: PLR0911
        """(why it is not read, the bytes): a FIFO or device never blocks,
        a file read before is skipped silently, a large one is refused, and
        so is one that another user could have written (``trust``)."""
        refusal = self.budget.trust.refusal_before_open(path)
        if refusal:
            return refusal, None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            refusal = self.budget.trust.refusal(fd, path)
            if refusal:
                return refusal, None
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return "not a regular file", None
            key = (info.st_dev, info.st_ino)
            if key in self.seen:
                return None, None  # read already (a loop of includes or symlinks)
            self.seen[key] = path
            if info.st_size > MAX_FILE_BYTES:
                return f"not read: larger than {MAX_FILE_BYTES // 1024} KiB", None
            data = os.read(fd, MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:
            return f"not read: larger than {MAX_FILE_BYTES // 1024} KiB", None
        if b"\0" in data:
            return "not read: binary data, not an ini file", None
        return None, data

    def include(self, pattern: str, path: str, number: int, depth: int) -> None:
        if depth > 8:
            self.problem(path, number, "include nested more than 8 deep")
            return
        full = pattern if pattern.startswith("/") else os.path.join(_prefix(self.reading.master), pattern)
        budget = self.budget
        matches, matched, stopped = bounded_glob(full, budget.matches, budget.spent)
        budget.matches = max(budget.matches - matched, 0)
        if stopped == OVER_LIMIT:
            stopped = f"include globs matched more than {MAX_GLOB_MATCHES} names"
        self.over_budget(path, number, stopped)
        if not matches:
            self.problem(path, number, "include matches no file")
        for match in matches:
            self.read_file(match, depth + 1)

    def add_pool(self, name: str, line: int, settings: Dict[str, str], path: str) -> None:
        """Collect a pool section. FPM merges sections of the same name,
        later settings winning (the official images' zz-docker.conf sets
        [www]'s listen so): they are judged once all are read."""
        if name in self.sections:
            first_path, first_line, first = self.sections[name]
            merged = {**first, **settings}
            self.sections[name] = (
                first_path,
                first_line,
                dict(itertools.islice(merged.items(), MAX_SETTINGS_PER_POOL)),
            )
        elif self.budget.pools > 0:
            self.budget.pools -= 1
            self.sections[name] = (path, line, dict(settings))
        else:
            self.over_budget(path, line, f"more than {MAX_POOLS} pools")

    def finish(self) -> None:
        """Judge the pools as FPM would, once every file is read."""
        master = self.reading.master
        for name, (path, line, settings) in self.sections.items():
            problems = [(key, check(settings[key])) for key, check in _CHECKS.items() if key in settings]
            problem = next((f"{key} {text}" for key, text in problems if text), None)
            if problem:
                self.problem(path, line, f"pool [{name}]: {problem}")
            elif not settings.get("listen"):
                self.problem(path, line, f"pool [{name}] has no listen address (FPM refuses it)")
            else:
                version = php_version(master) or php_version(path)
                self.reading.pools.append(PoolConfig(name, path, line, master, version, settings))


def _value(raw: str) -> str:
    """A bare or quoted ini value: a ; outside quotes starts a comment."""
    value = raw.strip()
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        value = value[1:end] if end > 0 else value[1:]
    else:
        value = value.split(";", 1)[0].strip()
    return value


def _prefix(master: str) -> str:
    """FPM's install prefix, against which it resolves a relative include:
    /usr/local for /usr/local/etc/php-fpm.conf (the official images)."""
    directory = os.path.dirname(master)
    return os.path.dirname(directory) if os.path.basename(directory) == "etc" else directory


def _path_problem(value: str) -> Optional[str]:
    """FPM's rule for ping.path and pm.status_path: / and then [alnum]/_-.~."""
    if not value.startswith("/") or len(value) < 2:
        return "must start with / and name a path"
    if not all(char.isalnum() or char in "/_-.~" for char in value):
        return "may hold only letters, digits and /_-.~"
    return None


def _pm_problem(value: str) -> Optional[str]:
    return None if value in ("static", "dynamic", "ondemand") else "must be static, dynamic or ondemand"


def _count_problem(value: str) -> Optional[str]:
    """FPM keeps counts in a C int."""
    if value.isdecimal() and len(value) <= 10 and 0 < int(value) <= 2**31 - 1:
        return None
    return "must be a whole number from 1 to 2147483647"


_CHECKS = {
    "pm": _pm_problem,
    "pm.max_children": _count_problem,
    "ping.path": _path_problem,
    "pm.status_path": _path_problem,
}


def default_masters(root: str = "/") -> List[str]:
    found: List[str] = []
    for pattern in DEFAULT_CONFIGS:
        found.extend(sorted(glob.glob(os.path.join(root, pattern))))
    return found
