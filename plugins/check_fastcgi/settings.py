"""A mode's settings, read from a mapping whoever wrote it: the command
line (argparse's values, as typed), a target table of serve's --config
(TOML: any type), or a pool that discover found. Each mode builds its
options in one place, its ``from_settings``, reading through ``Settings``,
so a value is checked, converted and worded the same whichever way it came.
"""

from __future__ import annotations

from fcgi_wire._values import TYPE_CHECKING

from .target import UsageError

if TYPE_CHECKING:
    from typing import Any, Callable, List, Mapping, Optional, TypeVar

    T = TypeVar("T")
    U = TypeVar("U")


class Settings:
    """One mode's values by key, and how a message names a key where the
    value came from (``--path`` on the command line, ``target www:
    ping_path`` in serve's TOML). A key that is absent or None is unset."""

    def __init__(self, values: Mapping[str, Any], name: Optional[Callable[[str], str]] = None) -> None:
        self.values = values
        self.name: Callable[[str], str] = name or str

    def _wrong(self, key: str, wanted: str, value: object) -> UsageError:
        return UsageError(f"{self.name(key)} must be {wanted}, not {str(value)[:20]!r}")

    def text(self, key: str, default: str = "") -> str:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def optional_text(self, key: str) -> Optional[str]:
        return self.text(key) if self.values.get(key) is not None else None

    def flag(self, key: str) -> bool:
        value = self.values.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def count(self, key: str, low: int, high: int) -> Optional[int]:
        """A whole number within [low, high]: an int (TOML's; a bool is no
        count) or the digits the command line gives."""
        value = self.values.get(key)
        if value is None:
            return None
        number = value
        if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 12:
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise self._wrong(key, f"a whole number from {low} to {high}", value)
        return number

    def parsed(self, key: str, parse: Callable[[str], T]) -> Optional[T]:
        """A string setting through ``parse``, whose ValueError says what is
        wrong with the text; None when unset."""
        text = self.optional_text(key)
        return None if text is None else self.parse(key, parse, text)

    def each(self, key: str, parse: Callable[[str], T]) -> List[T]:
        """A repeatable string setting, each value through ``parse``."""
        return [self.parse(key, parse, text) for text in self.texts(key)]

    def parse(self, key: str, parse: Callable[[U], T], value: U) -> T:
        """``parse(value)``; its ValueError named by the setting it came from."""
        try:
            return parse(value)
        except ValueError as exc:
            raise UsageError(f"{self.name(key)}: {exc}") from None

    def texts(self, key: str) -> List[str]:
        """A repeatable setting: a list of strings."""
        value = self.values.get(key)
        if value is None:
            return []
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise self._wrong(key, "a list of strings", value)
        return list(value)
