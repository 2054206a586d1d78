"""What discover prints: a table for a person, Zabbix low-level discovery,
definitions for Icinga 2, Nagios and monit that use contrib/'s
CheckCommand and commands, and NRPE commands (with the Nagios services that
call them through check_nrpe). Problems come along in each format's own
way: after the table, under "problems" in the JSON, as comments in the
configs.

Every value reaches an engine escaped for that engine (``$`` in Icinga 2's,
Nagios' and NRPE's macros, quotes and backslashes in their strings, shell
quoting where NRPE hands the line to /bin/sh), and object names are cleaned
to what the engine accepts, then made unique. A pool that a format cannot
carry safely (a ``;`` for Nagios, a ``"`` for monit, any of the agent's
unsafe characters for Zabbix's keys, a line longer than NRPE reads) is left
out of that format with a comment: one pool never invalidates the whole
file.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from fcgi_wire import UnixAddress

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
    IPv6 listen's brackets are the one exception: its host (without them)
    is an IP literal."""
    address = pool.address
    where = address.path if isinstance(address, UnixAddress) else address.host
    keyed = (pool.name, where, pool.ping_path, pool.status_path, pool.ping_response)
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
        address = pool.address
        socket = address.path if isinstance(address, UnixAddress) else ""
        host, port = ("", "") if isinstance(address, UnixAddress) else (address.host, str(address.port))
        data.append(
            {
                "{#POOL}": pool.name,
                "{#TITLE}": pool.title,
                "{#VERSION}": pool.config.version,
                "{#LISTEN}": pool.listen,
                "{#TRANSPORT}": "unix" if pool.is_unix else "tcp",
                "{#SOCKET}": socket,
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
    return _icinga_name(text.replace("$", "$$"))


def _icinga_name(text: str) -> str:
    """An Icinga 2 string literal for an object's name (host_name,
    command_endpoint): names are never resolved as macros, so a ``$``
    stays one."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def icinga2(
    pools: Sequence[Pool],
    problems: Sequence[Problem],
    *,
    host: Optional[str] = None,
    agent: Optional[str] = None,
    **_: str,
) -> str:
    """Service objects of the host ``host``, by default NodeName, what a
    stock Icinga 2 calls its own host (conf.d/hosts.conf). With ``agent``,
    the checks run on that Icinga 2 agent (its endpoint's name; the host is
    then by default the agent's namesake, Icinga's convention): FPM's socket
    and 127.0.0.1:9000 exist only on the web host. A checkable with a
    command endpoint needs a zone: in zones.d/ZONE/ it has that one, in
    conf.d/ none, and then takes the master's own (ZoneName)."""
    lines = [f"// {problem}" for problem in problems]
    if agent:
        lines.append(
            "// These checks run on the host's Icinga 2 agent (command_endpoint), in the zone of this"
            " file's zones.d/ directory, else in the local one (ZoneName)."
        )
        host = host or agent
    host_name = _icinga_name(host) if host else "NodeName"
    for pool, mode, name in _services(pools, lambda text: _ICINGA_NAME.sub("_", text), " "):
        lines.append(f"object Service {_icinga_string(name)} {{")
        lines.append(f"\thost_name = {host_name}")
        lines.append('\tcheck_command = "fastcgi"')
        if agent:
            lines.append(f"\tcommand_endpoint = {_icinga_name(agent)}")
            lines.append("\tif (!zone) { zone = ZoneName }")
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
    pools: Sequence[Pool],
    problems: Sequence[Problem],
    *,
    host: Optional[str] = None,
    nrpe: bool = False,
    plugin: str = PLUGIN,
    **_: str,
) -> str:
    """Services of the host ``host`` (by default localhost, what a stock
    Nagios calls its own) using contrib/nagios' commands; with ``nrpe``,
    services that ask the host's NRPE for the commands that ``nrpe()``
    writes, through Debian's ``check_nrpe`` command (nagios-nrpe-plugin)."""
    lines = [f"# {problem}" for problem in problems]
    commands = {
        "ping": "check_fastcgi_ping",
        "status": "check_fastcgi_status",
        "handshake": "check_fastcgi_handshake",
    }
    host_name = _NAGIOS_ILLEGAL.sub("_", host or "localhost")
    services = _services(pools, lambda text: _NAGIOS_ILLEGAL.sub("_", text), "_")
    # The same checks in the same order: the NRPE commands' names match.
    nrpe_commands = [(name, line) for _pool, _mode, name, line in _nrpe_commands(pools, plugin)]
    for (pool, mode, name), (nrpe_name, nrpe_line) in zip(services, nrpe_commands):
        args = pool.check_args(mode)
        if nrpe:
            if not nrpe_line:  # nrpe() left the command out
                lines.append(f"# {name}: {_NRPE_TOO_LONG}")
                continue
            # The NRPE command's name is all the Nagios side sends: it is
            # cleaned to letters, digits and _.- and holds no ! nor $.
            command = f"check_nrpe!{nrpe_name}"
        elif any(";" in arg or "\\" in arg for arg in args):
            # ; starts a comment in Nagios' object files, and \ escapes in its arguments.
            lines.append(f"# {name}: left out, a value holds a ';' or a '\\'")
            continue
        else:
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


#: What an NRPE command's name keeps: check_nrpe sends it, and NRPE refuses
#: a request holding any of |`&><'\\[]{}; (its nasty_metachars), takes a !
#: as the start of arguments, and reads "command[NAME]=" up to the first ] and =.
_NRPE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: NRPE reads its configuration a line at a time into 2048 bytes (fgets),
#: and a longer line is cut, its rest read as a line of its own; it also
#: drops what would not fit its 2048-byte command buffer.
_NRPE_LINE_BYTES = 2000
_NRPE_TOO_LONG = f"left out, its NRPE command would be longer than the {_NRPE_LINE_BYTES} bytes NRPE reads"
#: The plugin's own deadline in NRPE commands: under check_nrpe's 10 s.
_NRPE_TIMEOUT = "8"


def _nrpe_name(text: str) -> str:
    return "check_fastcgi_" + _NRPE_NAME.sub("_", text[len("PHP-FPM ") :]).strip("_")


def _nrpe_commands(pools: Sequence[Pool], plugin: str) -> List[Tuple[Pool, str, str, str]]:
    """(pool, mode, the NRPE command's unique name, its whole line or ""
    when it is too long) for every check. NRPE runs a command through /bin/sh
    (popen), after replacing its own $ARGn$ macros, where $$ is a $: every
    word is quoted for the shell, then each $ doubled for NRPE."""
    checks = [(pool, mode) for pool in pools for mode in pool.monitored()]
    names = unique((_nrpe_name(_service_name(pool, mode)) for pool, mode in checks), "_")
    commands = []
    for (pool, mode), name in zip(checks, names):
        words = [plugin, mode, *pool.check_args(mode), "-t", _NRPE_TIMEOUT]
        line = f"command[{name}]=" + " ".join(shlex.quote(word) for word in words).replace("$", "$$")
        if len(line.encode()) > _NRPE_LINE_BYTES:
            line = ""
        commands.append((pool, mode, name, line))
    return commands


def nrpe(pools: Sequence[Pool], problems: Sequence[Problem], *, plugin: str = PLUGIN, **_: str) -> str:
    """NRPE commands (an nrpe.d file), one per pool and mode: every argument
    is in the command, so they take none from the network and NRPE's
    dont_blame_nrpe=0 stays. ``nagios(nrpe=True)`` writes the services."""
    lines = [f"# {problem}" for problem in problems]
    for _pool, _mode, name, line in _nrpe_commands(pools, plugin):
        lines.append(line or f"# {name}: {_NRPE_TOO_LONG}")
    return "\n".join(lines) + "\n"


FORMATS: Dict[str, Callable[..., str]] = {
    "table": table,
    "json": zabbix,
    "icinga2": icinga2,
    "nagios": nagios,
    "monit": monit,
    "nrpe": nrpe,
}
