"""Immutable value classes without the cost of ``dataclasses``.

A monitoring plugin is a new process per check, and ``dataclasses`` pulls in
``inspect`` and compiles an ``__init__`` per class at import: several
milliseconds on every run. ``Value`` gives what we used from it (typed
fields from annotations, defaults, positional or keyword construction,
frozen instances, equality, hashing, a readable repr, ``_replace``) with
``__slots__`` and an ``__init__`` compiled for each class the first time it
is used, plus ``_build``, a cheaper constructor for hot paths. Type
checkers see it as a frozen dataclass through ``dataclass_transform``.
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


def _compile_init(fields: Tuple[str, ...], defaults: Dict[str, Any], setters: Tuple[Any, ...]) -> Any:
    """An ``__init__`` for these fields, compiled once per class (a few
    microseconds at import) so that building a value costs no more than a
    plain class: positional or keyword arguments, defaults, Python's own
    errors for missing or unknown ones."""
    names = {f"_set_{field}": setter for field, setter in zip(fields, setters)}
    names.update({f"_default_{field}": value for field, value in defaults.items()})
    params = ", ".join(f"{field}=_default_{field}" if field in defaults else field for field in fields)
    body = "".join(f"    _set_{field}(self, {field})\n" for field in fields)
    source = f"def __init__(self, {params}):\n{body or '    pass'}\n"
    exec(source, names)  # noqa: S102 - built from annotated field names only
    return names["__init__"]


@dataclass_transform(frozen_default=True)
class _ValueMeta(type):
    """Turns annotations into ``__slots__``, remembers defaults, and gives
    each class a compiled ``__init__`` that sets the slots directly."""

    def __new__(mcs, name: str, bases: Tuple[type, ...], namespace: Dict[str, Any]) -> _ValueMeta:
        own = [field for field in namespace.get("__annotations__", {}) if not field.startswith("_")]
        defaults = {field: namespace.pop(field) for field in own if field in namespace}
        namespace.setdefault("__slots__", tuple(own))
        cls = super().__new__(mcs, name, bases, namespace)
        fields: Tuple[str, ...] = getattr(cls, "_fields", ()) + tuple(own)
        defaults = {**getattr(cls, "_defaults", {}), **defaults}
        cls._fields = fields  # type: ignore[attr-defined]
        cls._defaults = defaults  # type: ignore[attr-defined]
        if fields and "__init__" not in namespace:
            cls.__init__ = _first_init  # type: ignore[misc]
        if "_build" not in namespace:  # each class its own: a subclass's is not its base's
            cls._build = _FIRST_BUILD  # type: ignore[attr-defined]
        return cls


def _first_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """Compiles the class's real ``__init__`` on its first instance, so a
    process pays only for the classes it uses, then runs it."""
    cls = type(self)
    owner: Any = next(klass for klass in cls.__mro__ if klass.__dict__.get("__init__") is _first_init)
    # A slot is a descriptor on the class; its __set__ bypasses our own
    # __setattr__, which refuses every assignment.
    setters = tuple(getattr(owner, field).__set__ for field in owner._fields)
    init = _compile_init(owner._fields, owner._defaults, setters)
    post_init = getattr(owner, "__post_init__", None)
    if post_init is not None:
        plain = init

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            plain(self, *args, **kwargs)
            post_init(self)

    _INITS[owner] = init
    type.__setattr__(owner, "__init__", init)
    init(self, *args, **kwargs)


def _first_build(cls: Any, *values: Any) -> Any:
    """Compiles the class's ``_build`` on its first use, then runs it. A
    class with an ``__init__`` of its own, or no fields, is built by
    calling it."""
    init = cls.__dict__.get("__init__")
    usual = init is not None and (init is _first_init or init is _INITS.get(cls))
    build = _compile_build(cls) if usual else cls
    type.__setattr__(cls, "_build", staticmethod(build))
    return build(*values)


_FIRST_BUILD = classmethod(_first_build)

#: The ``__init__`` compiled for each class, by class: what tells
#: _first_build that a class's fields are set the usual way.
_INITS: Dict[type, Any] = {}


def _compile_build(cls: Any) -> Any:
    """``cls._build``: every field positionally, set as plain attributes on
    a twin of ``cls`` that does not refuse them (same bases and slots, so
    the same layout), which then becomes a ``cls``. Setting a slot through
    its descriptor, as ``__init__`` must, costs a call per field; this
    costs about half as much in all (a reply is one Response)."""
    namespace = {
        "__slots__": cls.__dict__.get("__slots__", ()),
        # object's own methods, so that an assignment is a plain one, and
        # calling the twin makes a bare instance (cheaper than __new__).
        "__init__": object.__init__,
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__module__": cls.__module__,
    }
    twin = type(cls)(cls.__name__, cls.__bases__, namespace)
    post_init = getattr(cls, "__post_init__", None)
    names = {"_twin": twin, "_cls": cls, "_post_init": post_init}
    fields = cls._fields
    lines = [f"def _build({', '.join(fields)}):", "    _obj = _twin()"]
    lines += [f"    _obj.{field} = {field}" for field in fields]  # no field starts with _
    lines.append("    _obj.__class__ = _cls")
    if post_init is not None:
        lines.append("    _post_init(_obj)")
    lines.append("    return _obj\n")
    exec("\n".join(lines), names)  # noqa: S102 - built from annotated field names only
    return names["_build"]


class Value(metaclass=_ValueMeta):
    """Base of immutable values: subclass, annotate fields, done."""

    __slots__ = ()
    _fields: ClassVar[Tuple[str, ...]] = ()
    _defaults: ClassVar[Dict[str, Any]] = {}

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Value) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    if TYPE_CHECKING:
        # Set on each class by the metaclass (_FIRST_BUILD).
        @classmethod
        def _build(cls, *values: Any) -> Self:
            """An instance from every field's value, positionally and in
            order: what ``cls(*values)`` makes, for less (_compile_build)."""

    def _replace(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        unknown = changes.keys() - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = [changes[name] if name in changes else getattr(self, name) for name in self._fields]
        return type(self)(*values)
