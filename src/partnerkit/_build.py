"""Building frozen, slotted attrs objects with plain attribute stores.

The ``__init__`` attrs writes for a frozen, slotted class sets each field through
``object.__setattr__`` (a call into C and a lookup per field): some 900 CPU instructions a
field, where the interpreter's own store into a slot takes a tenth of that. A redemption
builds five such objects (a subscription, a redemption record, a relation, the link's next
version and an audit event), some sixty fields.

:func:`builder` returns, for such a class, a function with the signature of its
``__init__`` that makes the same object: an instance of the class's twin (a subclass with
no slot of its own and ``object``'s ``__setattr__``), its fields stored plainly, then given
the class itself back, and its validators run as attrs runs them. What a caller gets is an
instance of the class and nothing else, equal field for field to what the class would make.
A class this cannot build exactly (a converter, a factory default, hooks around
``__init__``, keyword-only or renamed fields, a slot that is no field, as ``cache_hash``
adds, an ``__init__`` of its own) gets the class itself back: calling it is the class's own
``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["builder", "unfrozen_twin"]

T = TypeVar("T")
_new: Any = object.__new__


def unfrozen_twin(cls: type[Any]) -> type[Any] | None:
    """Return a subclass of the slotted, frozen *cls* whose fields can be set as plainly
    as those of any object, or ``None`` where *cls* is not such a class (one per class:
    the SQL stores' decoders use the same).

    The twin adds no slot, so the two have the same layout, which is what lets an object
    change class; setting both ``__setattr__`` and ``__delattr__`` back to ``object``'s
    gives the twin the interpreter's own attribute store rather than a call into Python.
    An object is never handed out as a twin: it is given its own class back first."""
    if cls in _TWINS:
        return _TWINS[cls]
    return _TWINS.setdefault(cls, _make_twin(cls))


_TWINS: dict[type[Any], type[Any] | None] = {}


def _make_twin(cls: type[Any]) -> type[Any] | None:
    if "__slots__" not in cls.__dict__ or cls.__dictoffset__:  # instances with a dict
        return None
    if (
        type(cls) is not type  # a metaclass of its own, which would see the twin made
        or any("__init_subclass__" in vars(k) for k in cls.__mro__[:-1])  # or a hook
        or getattr(cls, "__abstractmethods__", None)
    ):
        return None
    twin = type(
        f"_Unfrozen{cls.__name__}",
        (cls,),
        {
            "__slots__": (),
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            # ``twin()`` makes a bare instance as ``object.__new__(twin)`` does, through the
            # type's own slots (no lookup of ``object.__new__``, no Python ``__init__``).
            "__init__": object.__init__,
            "__module__": __name__,
        },
    )
    probe: Any = _new(twin)
    try:
        probe.__class__ = cls
    except TypeError:  # pragma: no cover - a layout the interpreter will not swap
        return None
    return twin


def builder(cls: type[T]) -> Callable[..., T]:
    """Return a function that builds *cls* as ``cls(...)`` would (see the module's text),
    or *cls* itself where that cannot be done exactly. Made once per class."""
    build = _BUILDERS.get(cls)
    if build is None:
        build = _BUILDERS.setdefault(cls, _make_builder(cls))
    return build


_BUILDERS: dict[type[Any], Callable[..., Any]] = {}


def _make_builder(cls: type[Any]) -> Callable[..., Any]:
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if (
        not attrs.has(cls)
        or code is None
        or not code.co_filename.startswith("<attrs generated")
        or cls.__new__ is not _new
        or any(
            hasattr(cls, hook)
            for hook in ("__attrs_pre_init__", "__attrs_post_init__", "__attrs_init__")
        )
    ):
        return cls
    fields = attrs.fields(cls)
    if any(
        not f.init
        or f.kw_only
        or f.alias != f.name
        or f.converter is not None
        or isinstance(f.default, attrs.Factory)  # type: ignore[arg-type]
        or not f.name.isidentifier()
        or f.name.startswith("_")  # the generated code's own names start with "_"
        for f in fields
    ):
        return cls
    hidden = set(cls.__dict__.get("__slots__", ())) - {f.name for f in fields} - {"__weakref__"}
    if hidden:  # a slot attrs fills itself (cache_hash's): only its __init__ knows it
        return cls
    twin = unfrozen_twin(cls)
    if twin is None:
        return cls
    # Every name of the code's own starts with "_", as no field's may (above): a field
    # cannot stand for one of them.
    env: dict[str, Any] = {
        "_twin": twin,
        "_cls": cls,
        "_disabled": attrs.validators.get_disabled,
    }
    params = []
    for i, f in enumerate(fields):
        if f.default is attrs.NOTHING:
            params.append(f.name)
        else:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
    lines = [f"def build({', '.join(params)}):", "    _obj = _twin()"]
    lines += [f"    _obj.{f.name} = {f.name}" for f in fields]
    lines.append("    _obj.__class__ = _cls")
    checked = [(i, f) for i, f in enumerate(fields) if f.validator is not None]
    if checked:
        # As attrs does: every field set first, then the validators in field order, unless
        # validators are switched off.
        lines.append("    if not _disabled():")
        for i, f in checked:
            env[f"_v{i}"], env[f"_a{i}"] = f.validator, f
            lines.append(f"        _v{i}(_obj, _a{i}, _obj.{f.name})")
    lines.append("    return _obj")
    namespace = dict(env)
    # The source is made from the field names of an attrs class, checked to be identifiers.
    code = compile("\n".join(lines) + "\n", f"<partnerkit build {cls.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102
    build: Callable[..., Any] = namespace["build"]
    return build
