"""A snapshot is the whole state: exported with every kind of element, reopened in a fresh
session (core, `swtui open --headless`, the engine's ApplySnapshot), it reproduces the state key,
both arms' weight hashes and the metrics; anything else fails loudly. Schema 1 still opens."""

import json

import pytest

from swtui.core.evidence import metrics
from swtui.core.engine import protocol as ev
from swtui.core.snapshot.snapshot import (NOT_SAVED, SCHEMA_VERSION, StateMismatch, apply_snapshot, build_snapshot,
                                 load_snapshot, validate, write_snapshot)
from swtui.core.errors import SnapshotError

from support.engine import Collector
from support.builders import tiny_session

SW = (1, 5, 17)
PROMPT, TOKENS = "The capital", 4
VARIANTS = [{"name": "naive", "config": {"method": "rtn", "bits": 4, "group": "tensor"}, "with_edits": True}]


def _whole_state(s):
    """Every kind of element a session can hold."""
    from swtui.core.edits.ablation import prune_nonsw
    from swtui.core.quant.session import apply_quant_config

    s.name_super_weight(*SW, label="planted")
    s.ledger.prune(*SW)
    s.ledger.scale(2, 3, 4, 1.5)
    s.set_sa_restore(*SW, on=True)
    s.set_zero_write(2, 7, on=True)  # an activation ablation (`z`)
    prune_nonsw(s, 5, {SW})  # the non-SW control: 5 zeroed weights
    apply_quant_config(s, {"method": "rtn", "bits": 4, "group": "tensor", "keep_super_weights": True})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(folder, data, original session's state key and hashes, its perplexity, the eval text file)."""
    root = tmp_path_factory.mktemp("whole")
    text = metrics.eval_text()[:1200]
    text_file = root / "eval.txt"
    text_file.write_text(text, encoding="utf-8")
    s = tiny_session("llama")
    _whole_state(s)
    m = metrics.measure(s, PROMPT, TOKENS, text)
    comparison = {"variants": VARIANTS, "results": {"baseline": m["base"].to_dict(), "naive": m["current"].to_dict()}}
    data = build_snapshot(s, prompt=PROMPT, max_new_tokens=TOKENS, measurement=m, eval_text=text,
                          comparison=comparison, sweeps={"scale": {"rows": [], "meta": {}}})
    folder = write_snapshot(data, root / "snaps")
    before = {"state_key": s.state_key(), "pristine": s.pristine_hash(), "current": s.current_hash(),
              "perplexity": {v: m[v].perplexity for v in ("base", "current")}}
    return folder, data, before, text, text_file


def test_the_snapshot_records_every_element(exported):
    folder, data, before, text, _ = exported
    saved = json.loads((folder / "findings.json").read_text())
    assert saved["schema_version"] == SCHEMA_VERSION == 2
    assert saved["zero_writes"] == [[2, 7]]
    assert sum(len(v) for v in saved["zero_masks"].values()) == 5
    assert [e["op"] for e in saved["edits"]] == ["prune", "scale"] and saved["sa_restored"] == [list(SW)]
    assert saved["quantization"]["held_out"] == [list(SW)]
    assert saved["comparison"]["variants"] == VARIANTS
    assert saved["metrics"]["eval_text"]["chars"] == len(text)
    report = (folder / "report.md").read_text()
    assert "MLP writes zeroed (layer, channel): (2, 7)." in report and "Control masks (5 weights zeroed)" in report


def test_a_fresh_session_reproduces_state_hashes_and_perplexity(exported):
    folder, _, before, text, _ = exported
    fresh = tiny_session("llama")
    assert apply_snapshot(fresh, load_snapshot(folder)) == []
    assert fresh.state_key() == before["state_key"]
    assert (fresh.pristine_hash(), fresh.current_hash()) == (before["pristine"], before["current"])
    m = metrics.measure(fresh, PROMPT, TOKENS, text)
    assert {v: m[v].perplexity for v in ("base", "current")} == before["perplexity"]


def test_headless_open_matches_everything(exported, capsys):
    from swtui.cli import main

    folder, _, before, _, text_file = exported
    assert main(["open", str(folder), "--headless", "--json", "--device", "cpu", "--eval-file", str(text_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches"] == {"state": True, "weights": True, "perplexity": True, "stopwords": True,
                              "generation": True}
    assert out["perplexity"] == before["perplexity"]
    assert out["zero_writes"] == [[2, 7]] and sum(out["zero_masks"].values()) == 5 and out["variants"] == ["naive"]


def test_the_engine_reopens_it_and_says_it_matched(exported):
    from swtui.core.engine.engine import Engine

    folder, data, before, text, _ = exported
    out = Collector()
    engine = Engine(out, None, session=tiny_session("llama"), snapshot=load_snapshot(folder), eval_text=text,
                    max_new_tokens=24)
    engine.start()
    try:
        said = out.wait_for(lambda e: isinstance(e, ev.Notice) and e.message.startswith("snapshot reproduced")
                            or isinstance(e, ev.Failed), timeout=120)
        assert isinstance(said, ev.Notice), said
        assert "perplexity matches" in said.message and "generation matches" in said.message
        assert engine.session.state_key() == before["state_key"]
        assert engine.session.current_hash() == before["current"]
        assert engine.max_new_tokens == TOKENS and engine.prompt == PROMPT
        assert engine.comparison == data["comparison"] and engine.sweeps == data["sweeps"]
    finally:
        engine.stop()


# -- failing loudly ------------------------------------------------------------------------------
def _tampered(exported, tmp_path, change):
    folder, data, *_ = exported
    bad = json.loads((folder / "findings.json").read_text())
    change(bad)
    return write_snapshot(bad, tmp_path)


def test_a_mismatching_perplexity_fails_the_cli_with_one_line(exported, tmp_path, capsys):
    from swtui.cli import main

    *_, text_file = exported
    path = _tampered(exported, tmp_path, lambda d: d["metrics"]["perplexity"].update(current=1.0))
    capsys.readouterr()
    assert main(["open", str(path), "--headless", "--json", "--device", "cpu", "--eval-file", str(text_file)]) == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if not line.startswith("…")]
    assert captured.out == "" and len(err) == 1
    assert err[0].startswith("swtui: snapshot mismatch:") and "perplexity current" in err[0]


def test_masks_or_weights_that_differ_fail_to_apply(exported):
    folder, data, *_ = exported
    data = load_snapshot(folder)
    name = next(iter(data["zero_masks"]))
    fewer = dict(data, zero_masks={name: data["zero_masks"][name][:-1]} if len(data["zero_masks"]) == 1 else
                 {k: v for k, v in data["zero_masks"].items() if k != name})
    fresh = tiny_session("llama")
    with pytest.raises(StateMismatch, match="current weights sha256"):
        apply_snapshot(fresh, fewer)
    other = dict(data, model=dict(data["model"], current_weights_sha256="0" * 64))
    with pytest.raises(StateMismatch, match="current weights sha256"):
        apply_snapshot(tiny_session("llama"), other)


def test_the_engine_fails_on_metrics_that_differ(exported):
    from swtui.core.engine.engine import Engine

    folder, data, _, text, _ = exported
    bad = load_snapshot(folder)
    bad["metrics"] = dict(bad["metrics"], generation={"base": "x", "current": "y"})
    out = Collector()
    engine = Engine(out, None, session=tiny_session("llama"), snapshot=bad, eval_text=text)
    engine.start()
    try:
        failed = out.wait_for(lambda e: isinstance(e, ev.Failed), timeout=120)
        assert failed.title == "Snapshot mismatch" and "generation base" in failed.message
        assert not any(isinstance(e, ev.Notice) and "reproduced" in e.message for e in out.events)
    finally:
        engine.stop()


def test_a_v2_snapshot_missing_a_field_is_an_error(exported):
    _, data, *_ = exported
    for drop in ("zero_writes", "zero_masks", "sweeps"):
        with pytest.raises(SnapshotError, match=drop):
            validate({k: v for k, v in data.items() if k != drop})
    with pytest.raises(SnapshotError, match="current_weights_sha256"):
        validate(dict(data, model={k: v for k, v in data["model"].items() if k != "current_weights_sha256"}))
    with pytest.raises(SnapshotError, match="metrics.eval_text"):
        validate(dict(data, metrics={k: v for k, v in data["metrics"].items() if k != "eval_text"}))


# -- not saved is not matched; schema 1 -------------------------------------------------------------
def test_a_generation_not_saved_is_reported_as_not_saved(tmp_path, capsys):
    from swtui.cli import main

    s = tiny_session("llama")
    s.ledger.prune(*SW)
    data = build_snapshot(s, prompt=PROMPT, max_new_tokens=TOKENS)  # nothing measured
    path = write_snapshot(data, tmp_path)
    assert main(["open", str(path), "--headless", "--json", "--device", "cpu"]) == 0
    matches = json.loads(capsys.readouterr().out)["matches"]
    assert matches == {"state": True, "weights": True, "perplexity": NOT_SAVED, "stopwords": NOT_SAVED,
                       "generation": NOT_SAVED}


def _as_v1(data: dict) -> dict:
    """What schema 1 wrote (the committed demo snapshot's shape): no zero writes nor masks, no
    current weights hash, no text hash, no comparison nor sweeps."""
    v1 = {k: v for k, v in data.items() if k not in ("zero_writes", "zero_masks", "comparison", "sweeps")}
    v1["schema_version"] = 1
    v1["model"] = {k: v for k, v in data["model"].items() if k != "current_weights_sha256"}
    v1["metrics"] = {k: v for k, v in data["metrics"].items() if k != "eval_text"}
    return v1


def test_a_schema_1_snapshot_migrates_and_opens(tmp_path, capsys):
    from swtui.cli import main

    s = tiny_session("llama")
    s.name_super_weight(*SW)
    s.ledger.prune(*SW)
    s.set_sa_restore(*SW, on=True)
    m = metrics.measure(s, PROMPT, TOKENS)
    v1 = _as_v1(build_snapshot(s, prompt=PROMPT, max_new_tokens=TOKENS, measurement=m))
    path = tmp_path / "findings.json"
    path.write_text(json.dumps(v1))
    data = load_snapshot(path)
    assert data["schema_version"] == 2 and data["migrated_from"] == 1
    assert data["zero_writes"] == [] and data["zero_masks"] == {} and data["model"]["current_weights_sha256"] is None
    fresh = tiny_session("llama")
    notes = apply_snapshot(fresh, data)
    assert fresh.state_key() == s.state_key() and any("schema 1" in n for n in notes)
    assert main(["open", str(path), "--headless", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    # schema 1 saved neither the current weights hash nor the text: those are not called matched
    assert out["matches"] == {"state": True, "weights": NOT_SAVED, "perplexity": NOT_SAVED, "stopwords": True,
                              "generation": True}


def test_committed_snapshots_load(request):
    """Every snapshot under snapshots/ validates in today's schema (schema 1 ones migrate)."""
    from pathlib import Path

    root = Path(request.config.rootpath) / "snapshots"
    folders = sorted(p.parent for p in root.glob("*/findings.json"))
    assert folders
    for folder in folders:
        data = load_snapshot(folder)
        assert data["schema_version"] == SCHEMA_VERSION
        assert data["edits"] and data["super_weights"]


def test_the_engine_exports_what_it_reopens(tmp_path):
    """`z` then `x` in one app, `swtui open` in another: the zeroed write comes back and the
    metrics match. An export queued right behind an edit (before its refresh) saves no metrics of
    the previous state."""
    from swtui.core.engine.engine import Engine

    from support.engine import idle_worker

    w, out = idle_worker(tiny_session("llama"), tokens=TOKENS)
    try:
        w.submit(ev.ToggleWriteAblation(1, 5))
        w.wait_idle()
        w.submit(ev.Export(str(tmp_path)))
        first = out.wait_for(lambda e: isinstance(e, ev.Exported)).path
        w.submit(ev.Prune(SW, on=True))
        w.submit(ev.Export(str(tmp_path)))  # same batch as the prune: before its refresh
        second = out.wait_for(lambda e: isinstance(e, ev.Exported) and e.path != first).path
        key = w.session.state_key()
        w.wait_idle()
    finally:
        w.stop()
    data = load_snapshot(first)
    assert data["zero_writes"] == [[1, 5]] and data["metrics"]["perplexity"] is not None
    stale = load_snapshot(second)
    assert stale["edits"] and stale["metrics"]["perplexity"] is None and stale["metrics"]["generation"] is None
    out2 = Collector()
    again = Engine(out2, None, session=tiny_session("llama"), snapshot=data)
    again.start()
    try:
        said = out2.wait_for(lambda e: isinstance(e, ev.Notice) and e.message.startswith("snapshot reproduced")
                             or isinstance(e, ev.Failed), timeout=120)
        assert isinstance(said, ev.Notice) and "perplexity matches" in said.message, said
        assert again.session.zero_writes == {(1, 5)} and again.session.state_key() != key
    finally:
        again.stop()
