"""FPM's ``include = GLOB``, expanded within a budget.

``glob.iglob`` yields only what matches, so between two matches it may
list directories for as long as the tree lasts: eight symlinks to ``.``
under a pattern seven levels deep are millions of directories and no
match at all. This walk counts every name that matches a part of the
pattern, at any level, and asks whether time is up before each directory
it lists; it stops at whichever bound comes first. Names starting with a
dot match only a part that starts with one, as in glob(3), which FPM uses.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from typing import Callable, List, Optional, Tuple

#: Why a walk stopped when it matched more names than it was allowed.
OVER_LIMIT = "over the limit"


def bounded_glob(
    pattern: str, limit: int, spent: Callable[[], Optional[str]]
) -> Tuple[List[str], int, Optional[str]]:
    """(the matching paths, sorted; how many names matched a part of the
    pattern on the way; why the walk stopped early, or None).

    ``limit``: how many names may match a part of the pattern, over every
    level (OVER_LIMIT past it); ``spent()``: a reason to stop (time, a
    signal), or None."""
    parts = os.path.abspath(pattern).split("/")[1:]
    found: List[str] = []
    matched = 0
    # Depth first, so memory holds one branch and its siblings, never a level.
    stack: List[Tuple[str, int]] = [("/", 0)]
    while stack:
        directory, index = stack.pop()
        part, last = parts[index], index == len(parts) - 1
        if not glob.has_magic(part):
            path = os.path.join(directory, part)
            if last:
                if os.path.lexists(path):
                    found.append(path)
            elif os.path.isdir(path):
                stack.append((path, index + 1))
            continue
        why = spent()
        if why:
            return sorted(found), matched, why
        names = _matching(directory, part, dirs_only=not last, room=limit - matched + 1)
        matched += len(names)
        if matched > limit:
            return sorted(found), matched, OVER_LIMIT
        for name in sorted(names, reverse=True):
            path = os.path.join(directory, name)
            if last:
                found.append(path)
            else:
                stack.append((path, index + 1))
    return sorted(found), matched, None


def _matching(directory: str, part: str, dirs_only: bool, room: int) -> List[str]:
    """The names in ``directory`` that match ``part``, at most ``room``."""
    hidden = part.startswith(".")
    names: List[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if (
                    (hidden or not entry.name.startswith("."))
                    and fnmatch.fnmatchcase(entry.name, part)
                    and (not dirs_only or _is_dir(entry))
                ):
                    names.append(entry.name)
                    if len(names) >= room:
                        break
    except OSError:
        pass  # unreadable or gone: no match there, as for glob(3)
    return names


def _is_dir(entry: os.DirEntry) -> bool:  # type: ignore[type-arg]
    try:
        return entry.is_dir()
    except OSError:
        return False
