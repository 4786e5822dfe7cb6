"""`wire`: every protocol message as plain data and back, and nothing else accepted."""

import dataclasses
import enum
import json
import types
import typing

import pytest

from swtui.core.engine import protocol as ev
from swtui.core.engine import wire


def _sample(hint, depth: int = 0):
    """A value of type `hint` that is not its default (so a dropped field shows)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _instance(hint, depth + 1)
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), depth)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[-1]
    if hint is bool:
        return True
    if hint is int:
        return 7 + depth
    if hint is float:
        return 2.5 + depth
    if hint is str:
        return f"s{depth}"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
        return (_sample(args[0], depth), _sample(args[0], depth + 1))
    if origin is tuple:
        return tuple(_sample(a, depth) for a in args) if args else (1, 2, 3)
    if hint is tuple:
        return (1, 2, 3)
    if origin is list:
        return [_sample(args[0], depth), _sample(args[0], depth + 1)] if args else [{"name": "a"}, 1]
    if hint is list:
        return [{"name": "a"}, 1]
    if origin is dict:
        return {"a": _sample(args[1], depth), "b": _sample(args[1], depth + 1)}
    if hint is dict:
        return {"a": 1, "b": [1, 2]}
    return 3.0  # object (a scale factor)


def _instance(cls, depth: int = 0):
    hints = typing.get_type_hints(cls, vars(ev))
    return cls(**{f.name: _sample(hints[f.name], depth) for f in dataclasses.fields(cls)})


MESSAGES = sorted((c for c in wire._TYPES.values() if c is not ev.Call), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_every_message_of_the_protocol_comes_back_equal_through_json(cls):
    message = _instance(cls)
    data = json.loads(json.dumps(wire.to_data(message)))  # as a recording holds it
    again = wire.from_data(data)
    assert again == message and type(again) is cls


def test_every_message_class_is_known_to_wire():
    classes = {c for c in vars(ev).values()
               if isinstance(c, type) and issubclass(c, (ev.Request, ev.Event)) and c not in (ev.Request, ev.Event)}
    assert set(wire._TYPES.values()) == classes
    with pytest.raises(TypeError):
        wire.to_data(ev.Call(fn=print))


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_an_unknown_or_missing_field_is_an_error_naming_class_and_field(cls):
    data = json.loads(json.dumps(wire.to_data(_instance(cls))))
    with pytest.raises(wire.WireError, match=rf"{cls.__name__} has no field 'extra'"):
        wire.from_data({**data, "extra": 1})
    for name in (f.name for f in dataclasses.fields(cls)):
        partial = {k: v for k, v in data.items() if k != name}
        with pytest.raises(wire.WireError, match=rf"{cls.__name__} is missing its field '{name}'"):
            wire.from_data(partial)


def test_nested_payloads_are_strict_too():
    loaded = wire.to_data(_instance(ev.Loaded))
    with pytest.raises(wire.WireError, match=r"Loaded\.info: ModelInfo has no field 'extra'"):
        wire.from_data({**loaded, "info": {**loaded["info"], "extra": 1}})
    info = dict(loaded["info"])
    del info["dtype"]
    with pytest.raises(wire.WireError, match=r"Loaded\.info: ModelInfo is missing its field 'dtype'"):
        wire.from_data({**loaded, "info": info})
    groups = wire.to_data(_instance(ev.DetectionDone))
    groups["groups"][1] = {**groups["groups"][1], "extra": 1}
    with pytest.raises(wire.WireError, match=r"DetectionDone\.groups\[1\]: GroupRow has no field 'extra'"):
        wire.from_data(groups)
    measured = wire.to_data(_instance(ev.Measured))
    del measured["metrics"]["b"]["perplexity"]
    with pytest.raises(wire.WireError, match=r"Measured\.metrics\['b'\]: Metrics is missing its field 'perplexity'"):
        wire.from_data(measured)
    with pytest.raises(wire.WireError, match=r"Loaded\.info: a ModelInfo must be a dict"):
        wire.from_data({**loaded, "info": [1, 2]})


def test_not_a_message_is_refused():
    for data in ({"type": "NoSuchEvent"}, {"busy": True}, ["Busy"], {"type": "Request"}):
        with pytest.raises(wire.WireError, match="not a protocol message"):
            wire.from_data(data)
    assert issubclass(wire.WireError, ValueError)


def test_a_verdict_comes_back_as_the_enum_and_a_wrong_one_is_refused():
    from swtui.core.verdicts import Verdict

    row = ev.SuperWeightRow(1, 5, 17, value=-3.5, current=0.0, state="pruned", pruned=True, verdict=Verdict.GROUP)
    data = json.loads(json.dumps(wire.to_data(ev.StateChanged([row], 1, "full precision", True, "p", ()))))
    assert data["super_weights"][0]["verdict"] == "super weight group"  # its label on the wire, as before
    again = wire.from_data(data)
    assert again.super_weights[0].verdict is Verdict.GROUP
    data["super_weights"][0]["verdict"] = "super wieght"
    with pytest.raises(wire.WireError, match="not a Verdict"):
        wire.from_data(data)


def test_a_sweep_row_is_told_apart_by_its_fields():
    quant = ev.QuantRow(None, 9.0, 8.0, 20.0, 7.5, ev.Ratio(0.8, 0.7, 0.9, 400), ev.Ratio(0.9, 0.85, 0.95, 400), None)
    data = json.loads(json.dumps(wire.to_data(ev.SweepRow("quant", quant))))
    assert wire.from_data(data).row == quant
    data["row"]["extra"] = 1
    with pytest.raises(wire.WireError, match="not those of ScaleRow or QuantRow"):
        wire.from_data(data)
