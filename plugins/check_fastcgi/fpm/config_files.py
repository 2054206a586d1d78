"""PHP-FPM's configuration, read as FPM reads it, to find its pools.

The ini syntax FPM accepts (php-src ``fpm_conf.c`` on the Zend ini
scanner): ``[global]`` and ``[POOL]`` sections, ``;`` comments, values quoted
or bare, ``$pool`` replaced by the pool's name, ``${VAR}`` by the
environment, and ``include = GLOB`` (in ``[global]`` only: FPM refuses it in
a pool). Whatever cannot be read (a file, a line, a pool) is one problem
naming the file and line; the rest is still read.

Files are read with bounds: at most MAX_FILE_BYTES each, MAX_FILES in all,
and an include that leads back to a file already read (a symlink loop, a
glob matching its own file) is read once.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from fcgi_wire._values import Value

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000

#: Where PHP-FPM's main configuration lives: Debian and Ubuntu (one per PHP
#: version), the official PHP container images, RHEL and Fedora, and
#: FreeBSD's ports. Relative to a root, "/" on a host.
DEFAULT_CONFIGS = (
    "etc/php/*/fpm/php-fpm.conf",
    "usr/local/etc/php-fpm.conf",
    "etc/php-fpm.conf",
    "etc/opt/remi/php*/php-fpm.conf",
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
        return f"{self.file}:{self.line}: {self.text}" if self.line else f"{self.file}: {self.text}"


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


def read_master(path: str, environ: Optional[Mapping[str, str]] = None) -> Reading:
    """The pools of one FPM master configuration file, includes followed."""
    reader = _Reader(path, environ if environ is not None else os.environ)
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

    def __init__(self, master: str, environ: Mapping[str, str]) -> None:
        self.reading = Reading(master)
        self.environ = environ
        self.seen: Dict[Tuple[int, int], str] = {}
        self.sections: Dict[str, Tuple[str, int, Dict[str, str]]] = {}

    def problem(self, path: str, line: int, text: str) -> None:
        self.reading.problems.append(Problem(path, line, text))

    def read_file(self, path: str, depth: int) -> None:
        text = self.load(path)
        if text is None:
            return
        section: Optional[str] = None  # None: before any section, or [global]
        section_line = 0
        settings: Dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
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
            self.problem(path, number, f"not a section header: {_short(line)}")
            return _NOT_A_HEADER
        if not name.isprintable():
            # A name that would carry escapes into every output is no pool of ours.
            self.problem(path, number, f"pool [{_short(name)}]: the name has control characters")
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
        if not equals or not key or any(char.isspace() for char in key) or not key.isprintable():
            self.problem(path, number, f"not a setting (KEY = VALUE): {_short(line)}")
            return
        value = _value(value, self.environ)
        if not value.isprintable():
            self.problem(path, number, f"{_short(key)}: the value has control characters")
        elif key != "include":
            if section is not None:
                settings[key] = value.replace("$pool", section)
        elif section is not None:
            self.problem(path, number, f"include in pool [{section}]: FPM allows it in [global] only")
        else:
            self.include(value, path, number, depth)

    def close(self, section: Optional[str], line: int, settings: Dict[str, str], path: str) -> None:
        if section is not None and section is not _REFUSED:
            self.add_pool(section, line, settings, path)

    def load(self, path: str) -> Optional[str]:
        if len(self.reading.files) >= MAX_FILES:
            self.problem(path, 0, f"not read: more than {MAX_FILES} configuration files")
            return None
        try:
            refusal, data = self._read_bytes(path)
        except OSError as exc:
            refusal, data = f"cannot read: {(exc.strerror or str(exc)).lower()}", None
        if refusal:
            self.problem(path, 0, refusal)
        if data is None:
            return None
        self.reading.files.append(path)
        return data.decode("utf-8", "replace")

    def _read_bytes(self, path: str) -> Tuple[Optional[str], Optional[bytes]]:
        """(why it is not read, the bytes): a FIFO or device never blocks,
        a file read before is skipped silently, a large one is refused."""
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
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
        if b"\0" in data:
            return "not read: binary data, not an ini file", None
        return None, data

    def include(self, pattern: str, path: str, number: int, depth: int) -> None:
        if depth > 8:
            self.problem(path, number, "include nested more than 8 deep")
            return
        full = pattern if pattern.startswith("/") else os.path.join(_prefix(self.reading.master), pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            self.problem(path, number, f"include {_short(pattern, 300)} matches no file")
        for match in matches[:MAX_FILES]:
            self.read_file(match, depth + 1)

    def add_pool(self, name: str, line: int, settings: Dict[str, str], path: str) -> None:
        """Collect a pool section. FPM merges sections of the same name,
        later settings winning (the official images' zz-docker.conf sets
        [www]'s listen so): they are judged once all are read."""
        if name in self.sections:
            first_path, first_line, first = self.sections[name]
            self.sections[name] = (first_path, first_line, {**first, **settings})
        else:
            self.sections[name] = (path, line, dict(settings))

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


def _value(raw: str, environ: Mapping[str, str]) -> str:
    """A bare or quoted ini value: a ; outside quotes starts a comment,
    ${VAR} is the environment's VAR."""
    value = raw.strip()
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        value = value[1:end] if end > 0 else value[1:]
    else:
        value = value.split(";", 1)[0].strip()
    return _ENV.sub(lambda match: environ.get(match.group(1), ""), value)


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


def _short(text: str, limit: int = 60) -> str:
    flat = "".join(char if char.isprintable() else "?" for char in text[:limit])
    return flat + ("…" if len(text) > limit else "")


def default_masters(root: str = "/") -> List[str]:
    found: List[str] = []
    for pattern in DEFAULT_CONFIGS:
        found.extend(sorted(glob.glob(os.path.join(root, pattern))))
    return found


def running_masters(proc: str = "/proc") -> List[Tuple[int, str]]:
    """(pid, configuration file) of every FPM master running now: FPM sets
    its title to "php-fpm: master process (PATH)"."""
    found = []
    for entry in _listdir(proc):
        if not entry.isdecimal():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                title = handle.read(4096).replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        match = re.match(r"php-fpm[\d.]*: master process \((.+)\)\Z", title)
        if match:
            found.append((int(entry), match.group(1)))
    return found


def _listdir(path: str) -> Iterable[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
