"""What discover prints: a table for a person, Zabbix low-level discovery,
and definitions for Icinga 2, Nagios and monit that use contrib/'s
CheckCommand and commands. Problems come along in each format's own way:
after the table, under "problems" in the JSON, as comments in the configs."""

from __future__ import annotations

import json
import re
import shlex
from typing import Callable, Dict, List, Sequence

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


def zabbix(pools: Sequence[Pool], problems: Sequence[Problem], **_: str) -> str:
    """Zabbix low-level discovery: one object of macros per pool."""
    data = []
    for pool in pools:
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
    return json.dumps({"data": data, "problems": [str(p) for p in problems]}) + "\n"


def _service_name(pool: Pool, mode: str) -> str:
    return f"PHP-FPM {pool.title} {mode}"


def _quoted(text: str) -> str:
    return json.dumps(text)  # Icinga 2's string literals take JSON's escapes


def icinga2(pools: Sequence[Pool], problems: Sequence[Problem], *, host: str = "localhost", **_: str) -> str:
    lines = [f"// {problem}" for problem in problems]
    for pool in pools:
        for mode in pool.monitored():
            args = pool.check_args(mode)
            lines.append(f"object Service {_quoted(_service_name(pool, mode))} {{")
            lines.append(f"\thost_name = {_quoted(host)}")
            lines.append('\tcheck_command = "fastcgi"')
            lines.append(f"\tvars.fastcgi_mode = {_quoted(mode)}")
            lines += [f"\t{line}" for line in _icinga_vars(args)]
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
        rendered = value if option in ("-p", "--max-children") else _quoted(value)
        lines.append(f"vars.{names[option]} = {rendered}")
    return lines


def nagios(pools: Sequence[Pool], problems: Sequence[Problem], *, host: str = "localhost", **_: str) -> str:
    lines = [f"# {problem}" for problem in problems]
    commands = {
        "ping": "check_fastcgi_ping",
        "status": "check_fastcgi_status",
        "handshake": "check_fastcgi_handshake",
    }
    for pool in pools:
        for mode in pool.monitored():
            args = pool.check_args(mode)
            if any(";" in arg for arg in args):  # a ; starts a comment in Nagios' object files
                lines.append(f"# {_service_name(pool, mode)}: left out, its address holds a ';'")
                continue
            target_length = 2 if args[0] == "-s" else 4
            target, rest = args[:target_length], args[target_length:]
            command = f"{commands[mode]}!{_nagios_args(target)}"
            if mode != "handshake":
                command += f"!{_nagios_args(rest)}"
            lines += [
                "define service {",
                "    use                     generic-service",
                f"    host_name               {host}",
                f"    service_description     {_NAGIOS_ILLEGAL.sub('_', _service_name(pool, mode))}",
                f"    check_command           {command}",
                "}",
            ]
    return "\n".join(lines) + "\n"


#: Nagios' default illegal_object_name_chars, and its comment character.
_NAGIOS_ILLEGAL = re.compile(r"[`~!$%^&*|'\"<>?,()=;]")


def _nagios_args(args: List[str]) -> str:
    # "!" separates arguments and "$" starts a macro: neither may appear raw.
    return " ".join(shlex.quote(arg).replace("$", "$$").replace("!", "\\!") for arg in args)


def monit(pools: Sequence[Pool], problems: Sequence[Problem], *, plugin: str = PLUGIN, **_: str) -> str:
    lines = [f"# {problem}" for problem in problems]
    for pool in pools:
        for mode in pool.monitored():
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"php-fpm-{pool.title}-{mode}").strip("-")
            command = " ".join(
                shlex.quote(part) for part in [plugin, mode, *pool.check_args(mode), "-t", "5"]
            )
            if '"' in command:  # monit's path "..." has no escape for a quote
                lines += [f"# {name}: left out, its address holds a '\"'", ""]
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
