"""How a check that ends early speaks: usage errors, the safety net,
signals and internal errors, in the output format the command line asked
for. Only the standard library, so it works before anything else loads."""

from __future__ import annotations

import os
import sys
from typing import NoReturn, Sequence

EXIT_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

#: "nagios" or "json"; set from argv before parsing, so even a usage error
#: comes out in the format the engine reads.
FORMAT = "nagios"


def format_from_argv(argv: Sequence[str]) -> str:
    for index, arg in enumerate(argv):
        if arg == "--format" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--format="):
            return arg.split("=", 1)[1]
    return "nagios"


def text(state: str, summary: str, output_format: str = "") -> str:
    """The whole output for a check that ends with no metrics."""
    if (output_format or FORMAT) == "json":
        import json  # noqa: PLC0415 - only this format needs it

        document = {"state": state, "exit_code": EXIT_CODES[state], "summary": summary, "metrics": {}}
        return json.dumps(document) + "\n"
    return f"FASTCGI {state} - {summary}\n"


def exit_code(state: str, output_format: str = "") -> int:
    """JSON consumers (Zabbix) ignore exit codes: the document carries the
    state, and the command succeeds so the item gets its value."""
    return 0 if (output_format or FORMAT) == "json" else EXIT_CODES[state]


def end(state: str, summary: str) -> NoReturn:
    sys.stdout.write(text(state, summary))
    sys.stdout.flush()
    sys.exit(exit_code(state))


def end_now(state: str, summary: str) -> NoReturn:
    """From a signal handler that must not unwind: write and leave."""
    os.write(sys.stdout.fileno(), text(state, summary).encode())
    os._exit(exit_code(state))
