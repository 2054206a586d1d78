"""The modes. Each is a module here holding ``MODE``, an instance of a
``Mode`` subclass; the command line imports only the module it needs.

To add a mode: write ``modes/NAME.py`` with a Mode subclass (its help
texts, perfdata labels, arguments, and a nagiosplugin Check built from its
options and a Target) and its options class, whose ``from_settings`` is
the one place the options are built, from the command line, serve's
configuration and discover alike; then add NAME to ``NAMES``.
"""

from __future__ import annotations

from fcgi_wire._values import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import Any, Sequence, Tuple

    import nagiosplugin

    from ..target import Target

NAMES = ("handshake", "ping", "status")


class Mode:
    """What the command line needs of a mode."""

    name: str
    help: str
    description: str
    #: (label, uom, meaning) of every perfdata label, for --help.
    perfdata: Sequence[Tuple[str, str, str]]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The mode's own options (target and limits are common to all)."""
        raise NotImplementedError

    #: The mode's frozen options: ``from_settings(Settings)`` builds them
    #: (raising target.UsageError for a value or combination that cannot
    #: work), ``arguments()`` gives the command line back.
    options_type: Any

    def check(self, options: Any, target: Target) -> nagiosplugin.Check:
        """The check to run."""
        raise NotImplementedError


def load(name: str) -> Mode:
    if name not in NAMES:
        raise ValueError(f"no mode {name!r}")
    # __import__, not importlib: that module costs a check's start-up more.
    mode: Mode = __import__(f"{__name__}.{name}", fromlist=["MODE"]).MODE
    return mode
