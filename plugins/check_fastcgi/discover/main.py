"""``check_fastcgi discover [--config FILE] [--from-running] [--format F]``.

Prints on stdout in the chosen format and exits 0 when any configuration
was read, its problems included in the output; when nothing could be read
it says so as a plugin would: ``FASTCGI UNKNOWN - ...``, exit 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, NoReturn, Optional, Sequence

from fcgi_wire._values import Value

from ..fpm.config_files import Budget, Problem, default_masters, read_master
from ..fpm.masters import running_masters
from ..target import UsageError
from ..text import printable
from .formats import FORMATS, PLUGIN
from .pools import Pool, as_pool, qualify


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stdout.write(f"FASTCGI UNKNOWN - check_fastcgi discover: {message} (see --help)\n")
        sys.exit(3)

    def _print_message(self, message: str, file: object = None) -> None:
        if message:
            sys.stdout.write(message)


def parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="check_fastcgi discover",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Lists the PHP-FPM pools of this host from FPM's configuration: name, PHP version, listen\n"
            "address as check_fastcgi takes it, pm and pm.max_children, status and ping paths, socket\n"
            "owner and mode, and which modes can run; or writes monitoring definitions for them."
        ),
        epilog=(
            "Formats: table (default); json, Zabbix low-level discovery ({#POOL}, {#LISTEN}, {#HOST},\n"
            "{#PORT}, {#SOCKET}, {#TRANSPORT}, {#STATUS_PATH}, {#PING_PATH}, {#MAX_CHILDREN}, ...);\n"
            "icinga2, nagios and monit: service definitions using contrib/'s commands; nrpe: NRPE\n"
            "commands (an nrpe.d file) that take no arguments, for a Nagios that runs them through\n"
            "check_nrpe (nagios --nrpe writes its services)."
        ),
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="a master's php-fpm.conf (repeatable; default: the usual places)",
    )
    parser.add_argument("--from-running", action="store_true", help="also the masters running now (/proc)")
    parser.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="the host's files are under DIR: the usual places, and with --from-running only the "
        "masters whose configuration is there",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="table")
    parser.add_argument(
        "--host-name",
        type=_name,
        help="host_name in icinga2 output (default NodeName, a stock Icinga 2's own host, or the --agent) "
        "and nagios output (default localhost)",
    )
    parser.add_argument(
        "--agent",
        type=_name,
        metavar="ENDPOINT",
        help="icinga2 output: the checks run on the Icinga 2 agent ENDPOINT (command_endpoint), where FPM "
        "listens; the host is by default the agent's namesake",
    )
    parser.add_argument(
        "--nrpe",
        action="store_true",
        help="nagios output: services that run the nrpe output's commands through check_nrpe",
    )
    parser.add_argument(
        "--plugin", default=PLUGIN, help=f"the plugin's path in monit and nrpe output (default {PLUGIN})"
    )
    return parser


#: Which format each option is for.
_FORMAT_OF = {"agent": "icinga2", "nrpe": "nagios"}


def _name(value: str) -> str:
    """A host or endpoint name goes into engine configurations on a line of
    its own: no control characters."""
    if not value or not value.isprintable():
        raise argparse.ArgumentTypeError("a name without control characters")
    return value


class Discovery(Value):
    """What one discovery found."""

    pools: List[Pool]
    problems: List[Problem]
    #: The master configurations read.
    masters: List[str]
    #: A line for each running master skipped (another user's process):
    #: for stderr, as it concerns the host rather than the configuration.
    skipped: List[str]


def discover(
    configs: Sequence[str],
    from_running: bool = False,
    root: str = "/",
    stop: Optional[Callable[[], bool]] = None,
) -> Discovery:
    """Every pool of the masters named, or found at the usual places, and
    of the masters running now; one budget over them all (``stop``: a
    signal came, end early)."""
    masters = list(configs or default_masters(root))
    skipped: List[str] = []
    if from_running:
        running, skipped = running_masters()
        # A master whose configuration lies outside the root is another
        # host's (a container's, or the machine's own beside a test's).
        inside = os.path.join(os.path.abspath(root), "")
        masters += [
            master.config
            for master in running
            if master.config not in masters and (root == "/" or master.config.startswith(inside))
        ]
    budget = Budget(stop=stop)
    pools: List[Pool] = []
    problems: List[Problem] = []
    for master in masters:
        reading = read_master(master, budget)
        problems += reading.problems
        for config in reading.pools:
            try:
                pools.append(as_pool(config))
            except UsageError as exc:
                problems.append(Problem(config.file, config.line, f"pool [{config.name}]: {exc}"))
    problems.sort(key=lambda problem: (problem.file, problem.line))
    return Discovery(qualify(pools), problems, masters, skipped)


def main(argv: Sequence[str]) -> NoReturn:
    try:
        _main(argv)
    except Exception as exc:  # one line, as everywhere: never a traceback
        sys.stdout.write(f"FASTCGI UNKNOWN - discover: internal error: {type(exc).__name__}: {exc}\n")
        sys.exit(3)
    sys.exit(0)


def _main(argv: Sequence[str]) -> None:
    from ..runner import early_signal  # noqa: PLC0415

    command_line = parser()
    args = command_line.parse_args(list(argv))
    for option, output_format in _FORMAT_OF.items():
        if getattr(args, option) and args.format != output_format:
            command_line.error(f"--{option} is for --format {output_format}")
    found = discover(args.config, args.from_running, args.root, stop=lambda: early_signal() is not None)
    for line in found.skipped:
        sys.stderr.write(f"check_fastcgi discover: {line}\n")
    pools, problems, masters = found.pools, found.problems, found.masters
    if not pools and not masters:
        sys.stdout.write(
            "FASTCGI UNKNOWN - discover: no PHP-FPM configuration found "
            "(give --config FILE, or --from-running while FPM runs)\n"
        )
        sys.exit(3)
    if not pools:
        first = f": {problems[0]}" if problems else ""
        read = printable(", ".join(masters), 300)
        sys.stdout.write(f"FASTCGI UNKNOWN - discover: no pool could be read from {read}{first}\n")
        for problem in problems[1:]:
            sys.stdout.write(f"problem: {problem}\n")
        sys.exit(3)
    sys.stdout.write(
        FORMATS[args.format](
            pools, problems, host=args.host_name, plugin=args.plugin, agent=args.agent, nrpe=args.nrpe
        )
    )
