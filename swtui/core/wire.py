"""The protocol's plain-data form: any request or event as a JSON-able dict, and back.

Recordings of the engine (tests/tui/recordings) are lists of these dicts.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing

from swtui.core import protocol
from swtui.core.protocol import Call, Event, Request


def to_data(message: Request | Event) -> dict:
    """A request or event as a JSON-able dict: {"type": class name, **fields}."""
    if isinstance(message, Call):
        raise TypeError("a Call carries a function: it has no plain-data form")
    return {"type": type(message).__name__, **dataclasses.asdict(message)}


def from_data(data: dict) -> Request | Event:
    """The inverse of `to_data` (lists become tuples and dicts payloads where the fields say so)."""
    cls = _TYPES.get(data.get("type"))
    if cls is None:
        raise ValueError(f"not a protocol message: {data.get('type')!r}")
    hints = _hints(cls)
    return cls(**{f.name: _typed(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data})


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls, vars(protocol))


def _typed(hint, value):
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return hint(**{k: _typed(_hints(hint)[k], v) for k, v in value.items()})
    if (hint is tuple or origin is tuple) and isinstance(value, list):  # JSON has no tuples
        return tuple(value)
    if origin is list and args:
        return [_typed(args[0], v) for v in value]
    if origin is dict and len(args) == 2:
        return {k: _typed(args[1], v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None) and (dataclasses.is_dataclass(arg) or arg is tuple
                                          or typing.get_origin(arg) is tuple):
                return _typed(arg, value)
    return value


_TYPES = {cls.__name__: cls for cls in vars(protocol).values()
          if isinstance(cls, type) and issubclass(cls, (Request, Event)) and cls not in (Request, Event)}
