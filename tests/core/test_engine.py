"""The engine's protocol and its cancellation policy by request kind."""

import json

import pytest

from swtui.core.engine import protocol as ev
from swtui.core.engine import wire
from swtui.core.engine.protocol import CANCELLABLE, SUPERSEDES

from support.engine import idle_worker
from support.builders import tiny_session

SW = (1, 5, 17)


def test_every_message_is_plain_data_and_comes_back_equal():
    row = ev.SuperWeightRow(1, 5, 17, value=-3.5, current=0.0, state="pruned", pruned=True, verdict="super weight")
    messages = [
        ev.Loaded(ev.ModelInfo("tiny", "tiny:llama", "tiny", "llama", 4, 1234, "cpu", "float32", None, None,
                               ev.SourceQuant("gguf", "Q4_1", 4, 32, (ev.TensorTypeShare("Q4_1", 96),)))),
        ev.StateChanged([row], 1, "full precision", True, "The capital", ((1, 2, 3),)),
        ev.Measured({"base": ev.Metrics(17.5, 0.03, "Paris"), "current": ev.Metrics(74.7, 0.2, "the the")}),
        ev.VariantMeasured("baseline", ev.Metrics(17.5, 0.03)),
        ev.Prune(SW, on=False), ev.Scale(SW, 2.0), ev.Sweep("scale", key=SW),
        ev.Compare((ev.Variant("a", ev.QuantConfig(bits=3, held_out=((1, 5, 17),))), ev.Variant("b", None, False))),
        ev.Quantize(ev.QuantConfig(method="bnb-nf4", keep_super_weights=True)), ev.Quantize(None),
        ev.StopwordsDone(ev.StopwordReport({"base": 0.3}, (ev.TokenShift("the", 0.1, 0.2),))),
        ev.ProbeDone([ev.LayerRow(0, 3.0, 7, 0, 1.0, 5, 0, -1.0, 2.0, 5, weight=0.5)], 2.5, ["a"], "p"),
        ev.ApplySnapshot(force=True),
        ev.DetectionDone([SW, (2, 3, 4)], [SW], "no spike left",
                         [ev.GroupRow(5, [SW], 1, 900.0, 9.0, 0.01, "super weight", 17.5, 80.0)]),
        ev.SweepRow("quant", ev.QuantRow(None, 9.0, 8.0, 20.0, 7.5, ev.Ratio(0.8, 0.7, 0.9, 400),
                                         ev.Ratio(0.9, 0.85, 0.95, 400), "the source is already Q4_1")),
        ev.SweepRow("scale", ev.ScaleRow(0.0, 90.0, ev.Ratio(5.0, 4.0, 6.0, 400), 0.3)),
        ev.SweepDone("quant", (ev.QuantRow(64, 9.0, 8.0, 20.0, 7.5, ev.Ratio(0.8, 0.7, 0.9, 400),
                                           ev.Ratio(0.9, 0.85, 0.95, 400), None),),
                     ev.QuantMeta(3, 9.0, ((11, 507, 1229),), 17.5, ev.SourceQuant("float", "float"), None)),
    ]
    for message in messages:
        again = wire.from_data(json.loads(json.dumps(wire.to_data(message))))  # as recordings hold them
        assert again == message and type(again) is type(message)
    assert wire.from_data(json.loads(json.dumps(wire.to_data(ev.Prune(SW))))).key == SW  # a tuple again, not a list
    with pytest.raises(ValueError):
        wire.from_data({"type": "NoSuchEvent"})


def test_every_request_kind_has_a_policy():
    kinds = {cls.kind for cls in vars(ev).values()
             if isinstance(cls, type) and issubclass(cls, ev.Request) and cls is not ev.Request}
    assert kinds == set(SUPERSEDES)
    assert all("refresh" in SUPERSEDES[k] for k in kinds - {"export"})  # a refresh is a view: stale
    assert not any({"detect", "quantize", "edit"} & SUPERSEDES[k] for k in kinds - {"stop"})
    assert CANCELLABLE == {"refresh", "detect", "compare", "sweep"}


def test_a_new_refresh_supersedes_a_running_one():
    s = tiny_session("llama")
    w, out = idle_worker(s)
    w.max_new_tokens = 2000  # long enough to still stream when the second refresh arrives
    out.events.clear()
    w.submit(ev.Refresh())
    out.wait_for(lambda e: isinstance(e, ev.TokenStreamed))
    w.submit(ev.Refresh())
    done = out.wait_for(lambda e: isinstance(e, ev.GenerationDone) and e.cancelled)
    assert len(done.texts["current"]) < 2000
    w.submit(ev.Quantize(None))  # leave only short work behind
    w.cancel()
    assert w.stop(timeout=10)


def test_a_failed_quantization_shows_the_state_it_left(monkeypatch):
    import swtui.core.quant.session as qs

    s = tiny_session("llama")
    w, out = idle_worker(s)
    w.submit(ev.Quantize({"method": "rtn", "bits": 4, "group": "tensor"}))
    assert w.wait_idle(60)
    label = s.quant_label
    assert label.startswith("RTN W4")
    calls = {"n": 0}
    real = qs.rtn

    def fails_midway(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected")
        return real(*a, **k)

    monkeypatch.setattr(qs, "rtn", fails_midway)
    out.events.clear()
    w.submit(ev.Quantize({"method": "rtn", "bits": 8, "group": "channel"}))
    out.wait_for(lambda e: isinstance(e, ev.Failed))
    assert w.wait_idle(60)
    failed = next(i for i, e in enumerate(out.events) if isinstance(e, ev.Failed))
    after = [e for e in out.events[failed:] if isinstance(e, ev.StateChanged)]
    assert after, "no state after the failure: the status bar would keep what it showed before"
    assert after[-1].quant_mode == s.quant_label == label  # all or nothing, and the status bar says so
    assert w.stop(timeout=5)
