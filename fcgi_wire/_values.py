"""Immutable value classes without the cost of ``dataclasses``.

A monitoring plugin is a new process per check, and ``dataclasses`` pulls in
``inspect`` and compiles an ``__init__`` per class at import: several
milliseconds on every run. ``Value`` gives what we used from it (typed
fields from annotations, defaults, positional or keyword construction,
frozen instances, equality, hashing, a readable repr, ``_replace``) with
``__slots__`` and one generic ``__init__``. Type checkers see it as a frozen
dataclass through ``dataclass_transform``.
"""

from __future__ import annotations

#: typing.TYPE_CHECKING without importing typing (a few ms per process);
#: type checkers treat any constant of this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, Dict, Tuple

    from typing_extensions import Self, dataclass_transform
else:

    def dataclass_transform(**_: object):
        return lambda cls: cls


class FrozenError(AttributeError):
    """Assignment to a field of a frozen value."""


_MISSING = object()


@dataclass_transform(frozen_default=True)
class _ValueMeta(type):
    """Turns annotations into ``__slots__`` and remembers defaults."""

    def __new__(mcs, name: str, bases: Tuple[type, ...], namespace: Dict[str, Any]) -> _ValueMeta:
        own = [field for field in namespace.get("__annotations__", {}) if not field.startswith("_")]
        defaults = {field: namespace.pop(field) for field in own if field in namespace}
        namespace.setdefault("__slots__", tuple(own))
        cls = super().__new__(mcs, name, bases, namespace)
        inherited: Tuple[str, ...] = getattr(cls, "_fields", ())
        cls._fields = inherited + tuple(own)  # type: ignore[attr-defined]
        cls._defaults = {**getattr(cls, "_defaults", {}), **defaults}  # type: ignore[attr-defined]
        return cls


class Value(metaclass=_ValueMeta):
    """Base of immutable values: subclass, annotate fields, done."""

    __slots__ = ()
    _fields: ClassVar[Tuple[str, ...]] = ()
    _defaults: ClassVar[Dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} positional arguments")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            values[name] = value
        for name in fields:
            value = values.get(name, self._defaults.get(name, _MISSING))
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            object.__setattr__(self, name, value)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    def _replace(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)
