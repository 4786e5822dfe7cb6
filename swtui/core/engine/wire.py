"""The protocol's plain-data form: any request or event as a JSON-able dict, and back.

Recordings of the engine (tests/tui/recordings) are lists of these dicts. `from_data` is strict:
a field the class does not have, or one of its fields left out (in the message or in a payload
dataclass nested in it), is a `WireError` naming the class and the field, so a recording made
before a protocol change is refused rather than filled in with defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing

from swtui.core.engine import protocol
from swtui.core.engine.protocol import Call, Event, Request


class WireError(ValueError):
    """Plain data that is not a protocol message of the present protocol."""


def to_data(message: Request | Event) -> dict:
    """A request or event as a JSON-able dict: {"type": class name, **fields}."""
    if isinstance(message, Call):
        raise TypeError("a Call carries a function: it has no plain-data form")
    return {"type": type(message).__name__, **dataclasses.asdict(message)}


def from_data(data: dict) -> Request | Event:
    """The inverse of `to_data` (lists become tuples and dicts payloads where the fields say so).

    Every field must be there and nothing else (`WireError` otherwise)."""
    if not isinstance(data, dict):
        raise WireError(f"not a protocol message: {data!r}")
    cls = _TYPES.get(data.get("type"))
    if cls is None:
        raise WireError(f"not a protocol message: {data.get('type')!r}")
    return _build(cls, {k: v for k, v in data.items() if k != "type"}, cls.__name__)


def _build(cls: type, values, where: str):
    """cls(**values), every field typed, refusing unknown and missing fields."""
    if not isinstance(values, dict):
        raise WireError(f"{where}: a {cls.__name__} must be a dict of its fields, not {type(values).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    where = "" if where == cls.__name__ else f"{where}: "
    unknown = [k for k in values if k not in names]
    if unknown:
        raise WireError(f"{where}{cls.__name__} has no field {unknown[0]!r}"
                        + (f" (nor {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else ""))
    missing = [n for n in names if n not in values]
    if missing:
        raise WireError(f"{where}{cls.__name__} is missing its field {missing[0]!r}"
                        + (f" (and {', '.join(map(repr, missing[1:]))})" if missing[1:] else ""))
    hints = _hints(cls)
    path = where.removesuffix(": ") or cls.__name__
    return cls(**{n: _typed(hints[n], values[n], f"{path}.{n}") for n in names})


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls, vars(protocol))


def _typed(hint, value, where: str):
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise WireError(f"{where}: {value!r} is not a {hint.__name__}") from None
    if (hint is tuple or origin is tuple) and isinstance(value, list):  # JSON has no tuples
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            return tuple(_typed(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) == len(value):  # tuple[X, Y, Z]
            return tuple(_typed(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        return tuple(value)
    if origin is list and args and isinstance(value, list):
        return [_typed(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _typed(args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        classes = [a for a in args if dataclasses.is_dataclass(a)]
        if len(classes) > 1:  # which payload: the one whose fields are exactly the dict's keys
            if not isinstance(value, dict):
                raise WireError(f"{where}: a {' or '.join(c.__name__ for c in classes)} must be a dict of its fields")
            match = [c for c in classes if {f.name for f in dataclasses.fields(c)} == set(value)]
            if len(match) != 1:
                raise WireError(f"{where}: fields {sorted(value)} are not those of "
                                f"{' or '.join(c.__name__ for c in classes)}")
            return _build(match[0], value, where)
        for arg in args:
            if arg is not type(None) and (dataclasses.is_dataclass(arg) or arg is tuple
                                          or typing.get_origin(arg) is tuple
                                          or (isinstance(arg, type) and issubclass(arg, enum.Enum))):
                return _typed(arg, value, where)
    return value


_TYPES = {cls.__name__: cls for cls in vars(protocol).values()
          if isinstance(cls, type) and issubclass(cls, (Request, Event)) and cls not in (Request, Event)}
