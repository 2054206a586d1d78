"""What discover prints: a table for a person, Zabbix low-level discovery,
and definitions for Icinga 2, Nagios and monit that use contrib/'s
CheckCommand and commands. Problems come along in each format's own way:
after the table, under "problems" in the JSON, as comments in the configs.

Every value reaches an engine escaped for that engine (``$`` in Icinga 2's
and Nagios' macros, quotes and backslashes in their strings), and object
names are cleaned to what the engine accepts, then made unique. A pool
that a format cannot carry safely (a ``;`` for Nagios, a ``"`` for monit,
any of the agent's unsafe characters for Zabbix's keys) is left out of that
format with a comment: one pool never invalidates the whole file.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..fpm.config_files import Problem
from .pools import Pool

PLUGIN = "/usr/lib/nagios/plugins/check_fastcgi"


def table(pools: Sequence[Pool], problems: Sequence[Problem], **_: str) -> str:
    rows = [("POOL", "PHP", "LISTEN", "PM", "MAX", "STATUS", "PING", "MODES", "SOCKET")]
    for pool in pools:
        rows.append(
            (
                pool.name,
                pool.config.version or "-",
                pool.listen,
                pool.pm,
                pool.max_children or "-",
                pool.status_path or "-",
                pool.ping_path or "-",
                ",".join(pool.modes()),
                pool.socket or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    for pool in pools:
        lines += [f"hint: {hint}" for hint in pool.hints()]
    lines += [f"problem: {problem}" for problem in problems]
    return "\n".join(lines) + "\n"


#: What zabbix_agentd refuses in a key's parameters unless
#: UnsafeUserParameters=1, and what would then reach its shell.
_ZABBIX_UNSAFE = frozenset("\\'\"`*?[]{}~$!&;()<>|#@\n")


def _zabbix_refusal(pool: Pool) -> Optional[str]:
    """Why a pool's values cannot go into Zabbix item keys, or None. An
    IPv6 listen's brackets are the one exception: its host (target[1],
    without them) is an IP literal."""
    keyed = (pool.name, pool.target[1], pool.ping_path, pool.status_path, pool.ping_response)
    if any(_ZABBIX_UNSAFE & set(value) for value in keyed):
        return f"{pool.title}: left out, a value holds a character Zabbix agents refuse in keys"
    return None


def zabbix(pools: Sequence[Pool], problems: Sequence[Problem], **_: str) -> str:
    """Zabbix low-level discovery: one object of macros per pool."""
    data = []
    left_out = []
    for pool in pools:
        refusal = _zabbix_refusal(pool)
        if refusal:
            left_out.append(refusal)
            continue
        host, port = (pool.target[1], pool.target[3]) if not pool.is_unix else ("", "")
        data.append(
            {
                "{#POOL}": pool.name,
                "{#TITLE}": pool.title,
                "{#VERSION}": pool.config.version,
                "{#LISTEN}": pool.listen,
                "{#TRANSPORT}": "unix" if pool.is_unix else "tcp",
                "{#SOCKET}": pool.target[1] if pool.is_unix else "",
                "{#HOST}": host,
                "{#PORT}": port,
                "{#PM}": pool.pm,
                "{#MAX_CHILDREN}": pool.max_children,
                "{#STATUS_PATH}": pool.status_path,
                "{#PING_PATH}": pool.ping_path,
                "{#PING_RESPONSE}": pool.ping_response or ("pong" if pool.ping_path else ""),
                "{#MODES}": ",".join(pool.modes()),
            }
        )
    return json.dumps({"data": data, "problems": [str(p) for p in problems] + left_out}) + "\n"


def _service_name(pool: Pool, mode: str) -> str:
    return f"PHP-FPM {pool.title} {mode}"


def unique(names: Iterable[str], separator: str = "-") -> Iterator[str]:
    """The names, each made unique by a number where cleaning made two alike
    ("8.2-www" and "8.2 www" both clean to "8.2-www")."""
    taken: Dict[str, int] = {}
    for name in names:
        candidate = name
        while candidate in taken:
            taken[name] += 1
            candidate = f"{name}{separator}{taken[name]}"
        taken[candidate] = 1
        yield candidate


def _services(
    pools: Sequence[Pool], clean: Callable[[str], str], separator: str
) -> List[Tuple[Pool, str, str]]:
    """(pool, mode, the service's cleaned and unique name) for every check."""
    checks = [(pool, mode) for pool in pools for mode in pool.monitored()]
    names = unique((clean(_service_name(pool, mode)) for pool, mode in checks), separator)
    return [(pool, mode, name) for (pool, mode), name in zip(checks, names)]


#: What an Icinga 2 object name may hold here: "!" joins host and service
#: names, and the rest keeps names readable in every front end.
_ICINGA_NAME = re.compile(r"[^A-Za-z0-9 ._:-]+")


def _icinga_string(text: str) -> str:
    """An Icinga 2 string literal whose value is ``text`` as it is: quotes
    and backslashes escaped, and ``$`` doubled, since Icinga 2 resolves
    $macros$ in values when it runs a command (a pool's path could
    otherwise pull $host.vars.secret$ into a command line)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


def icinga2(
    pools: Sequence[Pool], problems: Sequence[Problem], *, host: Optional[str] = None, **_: str
) -> str:
    lines = [f"// {problem}" for problem in problems]
    # NodeName: what a stock Icinga 2 calls its own host (conf.d/hosts.conf).
    host_name = _icinga_string(host) if host else "NodeName"
    for pool, mode, name in _services(pools, lambda text: _ICINGA_NAME.sub("_", text), " "):
        lines.append(f"object Service {_icinga_string(name)} {{")
        lines.append(f"\thost_name = {host_name}")
        lines.append('\tcheck_command = "fastcgi"')
        lines.append(f"\tvars.fastcgi_mode = {_icinga_string(mode)}")
        lines += [f"\t{line}" for line in _icinga_vars(pool.check_args(mode))]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _icinga_vars(args: List[str]) -> List[str]:
    names = {
        "-s": "fastcgi_socket",
        "-H": "fastcgi_address",
        "-p": "fastcgi_port",
        "--path": "fastcgi_path",
        "-e": "fastcgi_expect",
        "--pool": "fastcgi_pool",
        "--max-children": "fastcgi_max_children",
    }
    lines = []
    for option, value in zip(args[::2], args[1::2]):
        # Ports and counts were checked to be numbers where they were read.
        rendered = value if option in ("-p", "--max-children") else _icinga_string(value)
        lines.append(f"vars.{names[option]} = {rendered}")
    return lines


#: Nagios' default illegal_object_name_chars, and its comment character.
_NAGIOS_ILLEGAL = re.compile(r"[`~!$%^&*|'\"<>?,()=;\\]")


def nagios(
    pools: Sequence[Pool], problems: Sequence[Problem], *, host: Optional[str] = None, **_: str
) -> str:
    lines = [f"# {problem}" for problem in problems]
    commands = {
        "ping": "check_fastcgi_ping",
        "status": "check_fastcgi_status",
        "handshake": "check_fastcgi_handshake",
    }
    host_name = _NAGIOS_ILLEGAL.sub("_", host or "localhost")
    for pool, mode, name in _services(pools, lambda text: _NAGIOS_ILLEGAL.sub("_", text), "_"):
        args = pool.check_args(mode)
        if any(";" in arg or "\\" in arg for arg in args):
            # ; starts a comment in Nagios' object files, and \ escapes in its arguments.
            lines.append(f"# {name}: left out, a value holds a ';' or a '\\'")
            continue
        target_length = 2 if args[0] == "-s" else 4
        target, rest = args[:target_length], args[target_length:]
        command = f"{commands[mode]}!{_nagios_args(target)}"
        if mode != "handshake":
            command += f"!{_nagios_args(rest)}"
        lines += [
            "define service {",
            "    use                     generic-service",
            f"    host_name               {host_name}",
            f"    service_description     {name}",
            f"    check_command           {command}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _nagios_args(args: List[str]) -> str:
    # "!" separates arguments and "$" starts a macro: neither may appear raw.
    return " ".join(shlex.quote(arg).replace("$", "$$").replace("!", "\\!") for arg in args)


def _monit_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"php-fpm-{text}").strip("-")


def monit(pools: Sequence[Pool], problems: Sequence[Problem], *, plugin: str = PLUGIN, **_: str) -> str:
    lines = [f"# {problem}" for problem in problems]
    for pool, mode, name in _services(pools, lambda text: _monit_name(text[len("PHP-FPM ") :]), "-"):
        command = " ".join(shlex.quote(part) for part in [plugin, mode, *pool.check_args(mode), "-t", "5"])
        if '"' in command:  # monit's path "..." has no escape for a quote
            lines += [f"# {name}: left out, a value holds a '\"'", ""]
            continue
        lines += [
            f'check program {name} with path "{command}"',
            "    with timeout 10 seconds",
            "    if status != 0 then alert",
            "",
        ]
    return "\n".join(lines)


FORMATS: Dict[str, Callable[..., str]] = {
    "table": table,
    "json": zabbix,
    "icinga2": icinga2,
    "nagios": nagios,
    "monit": monit,
}
