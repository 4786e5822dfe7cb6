"""Contract: the recorded session the torch-free TUI suite replays, re-checked on the live engine.

`tests/tui/recordings/demo.json` (made by `tests/record_demo_events.py` on the demo model) is what
the fake engine shows the TUI. Here every recorded request is replayed, in order, on a real engine
serving `tiny:llama`, and each must produce the recorded event *skeleton* (the sequence of event
types, `Busy` by its value, runs collapsed, `Progress` left out: how often a model reports progress
is its own business) and the recorded *fields* (names of every event's fields and of the payloads
nested in them; values differ between models). Requests that name the demo's coordinates (its
super weight (11, 507, 1229), a row of its probe at layer 2, a layer past its last) are carried
over to the tiny model's own: the candidate of the same rank in its detection, the row of its probe
at the proportional layer, a layer as far past its last.

The recording itself must parse under the strict `wire` (an unknown or missing field is refused).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from swtui.core.engine import wire

from support.builders import CPU
from support.engine import Collector

RECORDING = Path(__file__).resolve().parents[1] / "tui" / "recordings" / "demo.json"
EVAL_TEXT = "A short text to score, so that each refresh takes a moment on the tiny model."
STREAMED = {"Progress"}  # reported as often as a model likes: not part of the skeleton


def _steps() -> list[dict]:
    return json.loads(RECORDING.read_text())["steps"]


STEPS = _steps()


# -- what is compared ---------------------------------------------------------------------------
def skeleton(events: list[dict]) -> list[str]:
    """Event types in order, `Busy` with its value, `Progress` left out, repeats collapsed (tokens
    streamed, a detection's state after each candidate)."""
    out: list[str] = []
    for e in events:
        if e["type"] in STREAMED:
            continue
        label = f"Busy({e['busy']})" if e["type"] == "Busy" else e["type"]
        if not out or out[-1] != label:
            out.append(label)
    return out


def shape(value):
    """The structure of plain data: dict keys (recursively) and what lists hold, no values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        merged = None
        for v in value:
            if isinstance(v, (dict, list)):
                merged = shape(v) if merged is None else _merge(merged, shape(v))
        return [] if merged is None else [merged]
    return None


def _merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])] if a and b else (a or b)
    return a if a is not None else b


def shape_by_type(events: list[dict]) -> dict:
    shapes: dict = {}
    for e in events:
        s = shape(e)
        shapes[e["type"]] = _merge(shapes[e["type"]], s) if e["type"] in shapes else s
    return shapes


def differences(recorded, live, path: str = "") -> list[str]:
    """Where two shapes differ (a list empty on either side says nothing about its items)."""
    if isinstance(recorded, dict) and isinstance(live, dict):
        out = [f"{path}.{k}: recorded, not sent" for k in recorded if k not in live]
        out += [f"{path}.{k}: sent, not recorded" for k in live if k not in recorded]
        for k in recorded.keys() & live.keys():
            out += differences(recorded[k], live[k], f"{path}.{k}")
        return out
    if isinstance(recorded, list) and isinstance(live, list):
        return differences(recorded[0], live[0], f"{path}[]") if recorded and live else []
    if recorded is None and live is None or {type(recorded), type(live)} in ({type(None), list}, {type(None), dict}):
        return []  # two plain values, or an optional list or payload (e.g. a Ratio) left out on one side
    return [f"{path}: recorded {type(recorded).__name__}, sent {type(live).__name__}"]


# -- the demo's coordinates on the tiny model ----------------------------------------------------
class Facts:
    """What a model's load step says: its layer count, its detection's candidates, its probe rows."""

    def __init__(self, events: list[dict]):
        self.layers = next(e["info"]["layers"] for e in events if e["type"] == "Loaded")
        self.candidates = [tuple(k) for k in next(e for e in events if e["type"] == "DetectionDone")["candidates"]]
        probe = [e for e in events if e["type"] == "ProbeDone"][-1]
        self.probe = {row["layer"]: (row["layer"], row["out_channel"], row["in_channel"]) for row in probe["layers"]}
        assert self.candidates, "the model's detection found nothing to carry the recording over to"


def carried(request: dict, demo: Facts, tiny: Facts, out_dir: Path) -> dict:
    """The recorded request with the demo's coordinates replaced by the tiny model's counterparts."""
    data = copy.deepcopy(request)

    def key(k) -> tuple:
        k = tuple(k)
        if k in demo.candidates:
            return tiny.candidates[demo.candidates.index(k) % len(tiny.candidates)]
        if k[0] in demo.probe and demo.probe[k[0]] == k:  # a spike of the demo's probe at that layer
            return tiny.probe[k[0] * tiny.layers // demo.layers]
        if k[0] >= demo.layers:  # past the demo's last layer: as far past the tiny's
            return (k[0] - demo.layers + tiny.layers, *k[1:])
        return k

    if data.get("key") is not None:
        data["key"] = list(key(data["key"]))
    if {"layer", "row", "col"} <= data.keys():
        data["layer"], data["row"], data["col"] = key((data["layer"], data["row"], data["col"]))
    if {"layer", "channel"} <= data.keys():  # an activation ablation: a candidate's write channel
        at = [c for c in demo.candidates if (c[0], c[1]) == (data["layer"], data["channel"])]
        if at:
            data["layer"], data["channel"] = key(at[0])[:2]
        elif data["layer"] >= demo.layers:
            data["layer"] += tiny.layers - demo.layers
    if "out_dir" in data:
        data["out_dir"] = str(out_dir / data["out_dir"])
    return data


# -- the replay ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """[(recorded step, the request as sent, live events as plain data)], the load step first."""
    from swtui.core.evidence import metrics
    from swtui.core.engine.engine import Engine

    # the measurements shortened (a few stopword prompts, a short evaluation text, also for the
    # detection's impact): seconds, not minutes; what is sent is the same
    prompts, real_eval_text = metrics.stopword_prompts()[:3], metrics.eval_text
    out_dir = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics, "stopword_prompts", lambda: prompts)
        mp.setattr(metrics, "eval_text", lambda path=None: EVAL_TEXT if path is None else real_eval_text(path))
        out = Collector()
        # one torch thread: torch's threads on a busy machine otherwise wait on each other
        engine = Engine(out, "tiny:llama", CPU, max_new_tokens=8, token_interval=0.05, threads=1)
        engine.start()
        try:
            assert engine.wait_idle(timeout=120, settle=0.3), "the engine did not settle after loading"
            live_load = [wire.to_data(e) for e in out.events]
            results = [(STEPS[0], None, live_load)]
            demo, tiny = Facts(STEPS[0]["events"]), Facts(live_load)
            for step in STEPS[1:]:
                out.events.clear()
                request = carried(step["request"], demo, tiny, out_dir)
                engine.submit(wire.from_data(request))
                assert engine.wait_idle(timeout=120, settle=0.3), f"the engine did not settle after {request}"
                results.append((step, request, [wire.to_data(e) for e in out.events]))
        finally:
            assert engine.stop(timeout=10)
    return results


def _ids() -> list[str]:
    return ["load"] + [f"{i}-{s['request']['type']}" for i, s in enumerate(STEPS[1:], 1)]


@pytest.mark.parametrize("index", range(len(STEPS)), ids=_ids())
def test_the_live_engine_answers_each_recorded_request_as_recorded(replay, index):
    step, request, live = replay[index]
    recorded = step["events"]
    assert skeleton(live) == skeleton(recorded), f"{request}: the event sequence changed"
    rec_shapes, live_shapes = shape_by_type(recorded), shape_by_type(live)
    problems = [f"{t}{d}" for t in rec_shapes.keys() & live_shapes.keys()
                for d in differences(rec_shapes[t], live_shapes[t])]
    assert not problems, f"{request}: the fields changed: {problems}"
    if any(e["type"] == "Progress" for e in recorded) and step["request"] is not None:
        assert any(e["type"] == "Progress" for e in live), f"{request}: the recording reports progress"
    # the invariants the UI relies on: busy first, idle last, the state shown after every request
    assert live[0] == {"type": "Busy", "busy": True, "what": live[0]["what"]}
    assert live[-1] == {"type": "Busy", "busy": False, "what": ""}
    busy = [e["busy"] for e in live if e["type"] == "Busy"]
    assert busy == [True, False] * (len(busy) // 2), f"{request}: Busy does not alternate: {busy}"
    first_idle = next(i for i, e in enumerate(live) if e == {"type": "Busy", "busy": False, "what": ""})
    assert any(e["type"] == "StateChanged" for e in live[1:first_idle]), f"{request}: no StateChanged"
    for data in live:  # what the engine sends comes back equal through JSON (as a recording holds it)
        assert wire.to_data(wire.from_data(json.loads(json.dumps(data)))) == data


def test_the_demo_coordinates_land_on_the_tiny_models_own(replay):
    (_, _, live_load), sent = replay[0], [r for _, r, _ in replay[1:]]
    tiny = Facts(live_load)
    sw = list(tiny.candidates[0])
    assert {"type": "ToggleSA", "key": sw} in sent and {"type": "Prune", "key": sw, "on": True} in sent
    assert {"type": "ToggleWriteAblation", "layer": sw[0], "channel": sw[1]} in sent
    named = [r for r in sent if r["type"] == "NameSpike"]
    assert [(r["layer"], r["row"], r["col"]) for r in named][0] in tiny.probe.values()
    assert named[-1]["layer"] >= tiny.layers  # the recorded failure stays a failure


# -- the strict wire on the recording -----------------------------------------------------------
def test_every_recorded_message_parses_strictly_and_comes_back_equal():
    for name in ("demo", "mismatch"):
        for step in json.loads((RECORDING.parent / f"{name}.json").read_text())["steps"]:
            for data in ([step["request"]] if step["request"] else []) + step["events"]:
                again = json.loads(json.dumps(wire.to_data(wire.from_data(data))))
                assert again == data, f"{name}: {data['type']} changed on the way"


def _first(steps: list[dict], type_: str) -> dict:
    return next(e for s in steps for e in s["events"] if e["type"] == type_)


def test_an_unknown_field_in_a_recording_is_refused():
    steps = copy.deepcopy(STEPS)
    _first(steps, "StateChanged")["colour"] = "red"
    with pytest.raises(wire.WireError, match=r"StateChanged has no field 'colour'"):
        for data in steps[0]["events"]:
            wire.from_data(data)


def test_an_unknown_field_in_a_nested_payload_is_refused():
    steps = copy.deepcopy(STEPS)
    state = next(e for s in steps for e in s["events"] if e["type"] == "StateChanged" and e["super_weights"])
    state["super_weights"][0]["colour"] = "red"
    with pytest.raises(wire.WireError, match=r"StateChanged\.super_weights\[0\]: SuperWeightRow has no field 'colour'"):
        wire.from_data(state)
    measured = copy.deepcopy(_first(STEPS, "Measured"))
    measured["metrics"]["base"]["colour"] = "red"
    with pytest.raises(wire.WireError, match=r"Metrics has no field 'colour'"):
        wire.from_data(measured)


def test_a_missing_field_in_a_recording_is_refused():
    busy = dict(_first(STEPS, "Busy"))
    del busy["what"]  # even one with a default: a recording holds every field
    with pytest.raises(wire.WireError, match=r"Busy is missing its field 'what'"):
        wire.from_data(busy)
    probe = copy.deepcopy(_first(STEPS, "ProbeDone"))
    del probe["layers"][3]["weight"]
    with pytest.raises(wire.WireError, match=r"ProbeDone\.layers\[3\]: LayerRow is missing its field 'weight'"):
        wire.from_data(probe)
    request = dict(STEPS[1]["request"])
    del request["key"]
    with pytest.raises(wire.WireError, match=r"Prune is missing its field 'key'"):
        wire.from_data(request)
