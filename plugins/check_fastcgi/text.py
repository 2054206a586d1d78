"""Text from a server, made safe to print: one line, no control
characters, no perfdata separator, bounded length."""

from __future__ import annotations


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, limit: int = 60) -> str:
    """One line that is safe in a status line: control, format and
    separator characters (newlines, ANSI escapes, bidi overrides) and the
    perfdata separator escaped, long text cut with an ellipsis. Only the
    first ``4 * limit`` characters are looked at, so a huge value costs
    nothing."""
    head = text[: limit * 4 + 1]
    flat = "".join(char if char != "|" and char.isprintable() else _escape(char) for char in head)
    if len(flat) <= limit and len(head) == len(text):
        return flat
    return flat[: limit - 1] + "…"


def quoted(text: str, limit: int = 40) -> str:
    """printable() between single quotes, for showing what a server sent."""
    return f"'{printable(text, limit)}'"


def printable_bytes(data: bytes, limit: int = 60) -> str:
    """Bytes from the wire as printable text (UTF-8 where it decodes)."""
    return printable(data[: limit * 4].decode("utf-8", "replace"), limit)


def human_seconds(seconds: float) -> str:
    """0.000412 -> '0.4 ms', 1.5 -> '1.50 s': readable at a glance."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"
