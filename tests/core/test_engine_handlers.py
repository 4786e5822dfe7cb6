"""Each request the engine serves, on the live engine with a tiny model: what it does to the session
and to the events, and that the engine says so when it is done (the last event of every request is
`Busy(False)`, the status bar's cue to say "idle", and the engine is idle)."""

from pathlib import Path

import pytest

from swtui.core.engine import protocol as ev

from support.engine import idle_worker
from support.builders import tiny_session

SW = (1, 5, 17)  # tiny:llama's planted super weight
EVAL_TEXT = "A short text to score, so that each refresh takes a moment on the tiny model."


@pytest.fixture
def engine(monkeypatch):
    """(engine, collector, session) on a fresh tiny Llama, past its first refresh."""
    from swtui.core.evidence import metrics

    prompts = metrics.stopword_prompts()[:3]  # a shorter stopword measurement: the test is the handler
    monkeypatch.setattr(metrics, "stopword_prompts", lambda: prompts)
    s = tiny_session("llama")
    # one torch thread: torch's threads on a busy machine otherwise wait on each other
    w, out = idle_worker(s, tokens=4, eval_text=EVAL_TEXT, threads=1)
    yield w, out, s
    assert w.stop(timeout=10)


def serve(engine, request) -> list:
    """Submit `request`, wait until the engine is idle again; the events it emitted meanwhile,
    checked to end the way the UI needs: Busy(True) … Busy(False), each busy spell closed."""
    w, out, _ = engine
    out.events.clear()
    w.submit(request)
    assert w.wait_idle(timeout=60, settle=0.3), f"the engine is still busy after {request}"
    events = list(out.events)
    assert events and events[0] == ev.Busy(True, events[0].what), f"{request}: {events[:1]}"
    assert events[-1] == ev.Busy(False, ""), f"{request}: the last event is {events[-1]}, not Busy(False)"
    busy = [e.busy for e in events if isinstance(e, ev.Busy)]
    assert busy == [True, False] * (len(busy) // 2), f"{request}: busy spells {busy}"
    assert w.idle and not w.busy
    return events


def last(events: list, cls):
    found = [e for e in events if isinstance(e, cls)]
    assert found, f"no {cls.__name__} among {[type(e).__name__ for e in events]}"
    return found[-1]


def row(events: list, key=SW) -> ev.SuperWeightRow:
    return next(r for r in last(events, ev.StateChanged).super_weights if r.key == key)


def refreshed(events: list) -> bool:
    return any(isinstance(e, ev.Measured) for e in events)


def test_toggle_sa_restores_the_super_activation_and_toggles_back(engine):
    _, _, s = engine
    events = serve(engine, ev.ToggleSA(SW))
    assert s.sa_restore == {SW} and s.find_super_weight(SW) is not None  # named on the way
    r = row(events)
    assert r.sa_restored and r.state == "original + SA restored" and r.current == r.value
    assert last(events, ev.StateChanged).edit_count == 1 and refreshed(events)
    events = serve(engine, ev.ToggleSA(SW))
    assert s.sa_restore == set() and not row(events).sa_restored and row(events).state == "original"
    assert last(events, ev.StateChanged).edit_count == 0


def test_set_prompt_changes_what_is_generated(engine, monkeypatch):
    from swtui.core.evidence import generation

    w, _, s = engine
    prompts = []
    real = generation.generate

    def generate(session, prompt, *a, **k):
        prompts.append(prompt)
        return real(session, prompt, *a, **k)

    monkeypatch.setattr(generation, "generate", generate)
    events = serve(engine, ev.SetPrompt("The capital of Italy is"))
    assert w.prompt == "The capital of Italy is" and prompts == ["The capital of Italy is"]
    assert last(events, ev.StateChanged).prompt == "The capital of Italy is"
    done = last(events, ev.GenerationDone)
    assert done.texts == w.findings.generation == real(s, "The capital of Italy is", 4)
    assert last(events, ev.Measured).metrics["current"].generation == done.texts["current"]
    assert s.edit_count == 0


def test_name_spike_adds_a_labelled_row_and_a_bad_one_fails(engine):
    _, _, s = engine
    events = serve(engine, ev.NameSpike(2, 3, 9, "mine"))
    r = row(events, (2, 3, 9))
    assert (r.label, r.source, r.state) == ("mine", "user", "original")
    assert r.value == s.ledger.pristine_value(2, 3, 9) and refreshed(events)
    events = serve(engine, ev.NameSpike(99, 0, 0, "out of range"))  # tiny:llama has 4 layers
    assert "99" in last(events, ev.Failed).message and not refreshed(events)
    assert [sw.key for sw in s.super_weights] == [(2, 3, 9)]


def test_prune_zeroes_the_weight_and_unprune_brings_it_back(engine):
    _, _, s = engine
    s.name_super_weight(*SW)
    pristine = s.ledger.pristine_value(*SW)
    events = serve(engine, ev.Prune(SW))
    assert s.ledger.current_value(*SW) == 0.0
    assert row(events).pruned and row(events).state == "pruned" and row(events).current == 0.0
    base, current = last(events, ev.Measured).metrics["base"], last(events, ev.Measured).metrics["current"]
    assert base.perplexity != current.perplexity  # the refresh measured the pruned model
    events = serve(engine, ev.Prune(SW, on=False))
    assert s.ledger.current_value(*SW) == pristine and not row(events).pruned and s.edit_count == 0


def test_scale_multiplies_the_weight(engine):
    _, _, s = engine
    s.name_super_weight(*SW)
    events = serve(engine, ev.Scale(SW, 2.0))
    assert s.ledger.current_value(*SW) == pytest.approx(2 * s.ledger.pristine_value(*SW))
    assert row(events).state == "scaled ×2" and row(events).current == pytest.approx(2 * row(events).value)


def test_restore_undoes_the_edit_and_the_sa_restore_of_one_weight(engine):
    _, _, s = engine
    serve(engine, ev.Prune(SW))
    serve(engine, ev.ToggleSA(SW))
    events = serve(engine, ev.Restore(SW))
    assert s.ledger.edit(SW) is None and s.sa_restore == set() and s.edit_count == 0
    assert row(events).state == "original" and last(events, ev.StateChanged).edit_count == 0


def test_restore_all_returns_to_the_pristine_model(engine):
    _, _, s = engine
    serve(engine, ev.Scale(SW, 3.0))
    serve(engine, ev.ToggleSA(SW))
    serve(engine, ev.ToggleWriteAblation(2, 9))
    assert s.edit_count == 3
    events = serve(engine, ev.RestoreAll())
    assert s.edit_count == 0 and s.zero_writes == set() and s.ledger.current_value(*SW) == s.ledger.pristine_value(*SW)
    state = last(events, ev.StateChanged)
    assert state.edit_count == 0 and row(events).state == "original"
    measured = last(events, ev.Measured).metrics
    assert measured["base"].perplexity == pytest.approx(measured["current"].perplexity)


def test_toggle_write_ablation_zeroes_the_write_and_undoes_it(engine):
    _, _, s = engine
    events = serve(engine, ev.ToggleWriteAblation(1, 5))
    assert s.zero_writes == {(1, 5)} and last(events, ev.StateChanged).edit_count == 1
    # the same layer again undoes its zeroed write, whatever channel is asked now
    events = serve(engine, ev.ToggleWriteAblation(1, 6))
    assert s.zero_writes == set() and last(events, ev.StateChanged).edit_count == 0


def test_quantize_and_back_to_full_precision(engine):
    _, _, s = engine
    events = serve(engine, ev.Quantize({"method": "rtn", "bits": 4, "group": "tensor"}))
    assert s.quant_label.startswith("RTN W4") and last(events, ev.StateChanged).quant_mode == s.quant_label
    assert refreshed(events)
    events = serve(engine, ev.Quantize(None))
    assert s.quant_label == "full precision" and last(events, ev.StateChanged).quant_mode == "full precision"


def test_export_writes_a_snapshot_and_needs_no_refresh(engine, tmp_path):
    serve(engine, ev.Prune(SW))
    events = serve(engine, ev.Export(str(tmp_path / "snaps")))
    path = Path(last(events, ev.Exported).path)
    assert path.is_relative_to(tmp_path / "snaps") and path.exists()
    assert not refreshed(events)  # it exports what the last refresh showed


def test_prune_findings_prunes_every_super_weight_and_group_member_then_restores_them(engine):
    """The walk-through's new request (docs/ARCHITECTURE.md): P prunes every finding at once."""
    from swtui.core.verdicts import Verdict

    _, _, s = engine
    events = serve(engine, ev.PruneFindings())
    assert isinstance(last(events, ev.Failed), ev.Failed) and s.ledger.count == 0  # nothing judged yet
    a, b, other = s.name_super_weight(*SW), s.name_super_weight(2, 3, 4), s.name_super_weight(0, 1, 2)
    a.verdict, b.verdict, other.verdict = Verdict.SUPER, Verdict.GROUP, Verdict.BELOW
    before = s.current_hash()
    events = serve(engine, ev.PruneFindings())
    assert {k for k, e in s.ledger.edits.items() if e.op == "prune"} == {SW, (2, 3, 4)}  # not the harmless one
    assert row(events).state == "pruned" and refreshed(events)
    assert "pruned every finding" in last(events, ev.Notice).message
    serve(engine, ev.PruneFindings())  # again: all pruned, so restore them
    assert s.ledger.count == 0 and s.current_hash() == before
