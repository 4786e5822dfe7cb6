"""Snapshots: atomic writes, no overwrite, validation, hash mismatch, round trip on a tiny model."""

import json
import os

import pytest

from swtui.core.snapshot import snapshot as snap
from swtui.core.errors import SnapshotError
from swtui.core.snapshot.snapshot import HashMismatch, apply_snapshot, build_snapshot, load_snapshot, write_snapshot

from support.builders import tiny_session


@pytest.fixture
def data():
    s = tiny_session("llama")
    s.name_super_weight(1, 5, 17, label="planted")
    s.ledger.prune(1, 5, 17)
    return build_snapshot(s, prompt="The capital", created="2026-01-01T00:00:00Z")


def test_write_and_load_round_trip(tmp_path, data):
    path = write_snapshot(data, tmp_path, svg="<svg/>")
    assert sorted(p.name for p in path.iterdir()) == ["findings.json", "report.md", "screen.svg"]
    loaded = load_snapshot(path)
    assert loaded["edits"] == data["edits"] and loaded["schema_version"] == snap.SCHEMA_VERSION
    assert "# swtui findings: tiny-llama" in (path / "report.md").read_text()
    s = tiny_session("llama")
    apply_snapshot(s, loaded)
    assert s.ledger.summary() == data["edits"]
    assert s.find_super_weight((1, 5, 17)).label == "planted"


def test_never_overwrites(tmp_path, data):
    first = write_snapshot(data, tmp_path)
    before = (first / "findings.json").read_bytes()
    second = write_snapshot(data, tmp_path)
    third = write_snapshot(data, tmp_path)
    assert first != second != third and second.name.endswith("-2") and third.name.endswith("-3")
    assert (first / "findings.json").read_bytes() == before


def test_failure_mid_write_leaves_nothing_half_written(tmp_path, data, monkeypatch):
    earlier = write_snapshot(data, tmp_path)
    calls = {"n": 0}
    real = snap._write_file

    def flaky(path, text):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(snap, "_write_file", flaky)
    with pytest.raises(SnapshotError, match="No space left"):
        write_snapshot(data, tmp_path)
    assert sorted(os.listdir(tmp_path)) == [earlier.name]  # no temp folder, no half snapshot
    assert load_snapshot(earlier)["edits"] == data["edits"]


def test_unwritable_directory(tmp_path, data):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        if os.access(target, os.W_OK):  # root ignores permissions: use a path under a file instead
            target = tmp_path / "file"
            target.write_text("x")
            target = target / "sub"
        with pytest.raises(SnapshotError, match="cannot write"):
            write_snapshot(data, target)
    finally:
        (tmp_path / "ro").chmod(0o700)


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: "not json {", "not valid JSON"),
    (lambda d: json.dumps({"hello": "world"}), "not a swtui snapshot"),
    (lambda d: json.dumps(dict(d, schema_version=99)), "upgrade swtui"),
    (lambda d: json.dumps(dict(d, edits=[{"op": "rm -rf", "layer": 1, "row": 1, "col": 1, "factor": 0}])), "edits[0]"),
    (lambda d: json.dumps(dict(d, model="x")), "model"),
    (lambda d: json.dumps(dict(d, sa_restored=[[1, 2]])), "sa_restored"),
])
def test_validation_errors(tmp_path, data, mutate, needle):
    f = tmp_path / "findings.json"
    f.write_text(mutate(data))
    with pytest.raises(SnapshotError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_snapshot(f)


def test_missing_file(tmp_path):
    with pytest.raises(SnapshotError, match="cannot read"):
        load_snapshot(tmp_path / "nope")


def test_hash_mismatch(data):
    data = dict(data, model=dict(data["model"], weights_sha256="0" * 64))
    s = tiny_session("llama")
    with pytest.raises(HashMismatch):
        apply_snapshot(s, data)
    assert s.ledger.count == 0
    notes = apply_snapshot(s, data, force=True)
    assert "mismatch" in notes[0] and s.ledger.count == 1


def test_cli_open_refuses_mismatch_and_report_prints(tmp_path, data, capsys):
    from swtui.cli import main

    bad = dict(data, model=dict(data["model"], weights_sha256="0" * 64))
    path = write_snapshot(bad, tmp_path)
    assert main(["open", str(path), "--headless"]) == 2
    assert "differ from the snapshot" in capsys.readouterr().err
    assert main(["open", str(path), "--headless", "--force", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches"]["state"] is True
    assert main(["report", str(path)]) == 0
    assert "tiny-llama" in capsys.readouterr().out


def test_quantize_first_prune_after_reopens_to_the_same_weights_and_metrics(tmp_path, capsys):
    """A session that quantized first and pruned after is reproduced by `swtui open`."""
    from swtui.cli import main
    from swtui.core.evidence import metrics
    from swtui.core.quant.session import apply_quant_config

    s = tiny_session("llama")
    s.name_super_weight(1, 5, 17, label="planted")
    apply_quant_config(s, {"method": "rtn", "bits": 4, "group": "tensor", "keep_super_weights": True,
                           "clip_z": 3.0})
    s.ledger.prune(2, 3, 4)
    s.ledger.scale(1, 5, 17, 1.5)
    m = metrics.measure(s, "The capital", 8)
    ppl = {v: m[v].perplexity for v in ("base", "current")}
    data = build_snapshot(s, prompt="The capital", max_new_tokens=8, measurement=m)
    path = write_snapshot(data, tmp_path)
    assert main(["open", str(path), "--headless", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches"] == {"state": True, "weights": True, "generation": True, "perplexity": True,
                              "stopwords": True}
    assert out["perplexity"] == ppl
    fresh = tiny_session("llama")
    apply_snapshot(fresh, load_snapshot(path))
    assert fresh.current_hash() == s.current_hash() == data["model"]["current_weights_sha256"]


def test_a_perplexity_is_compared_only_on_the_text_it_was_measured_on(tmp_path, capsys):
    """A snapshot measured on --eval-file keeps that text's hash; `open` re-measuring on another
    text says so instead of calling the perplexities different (or equal)."""
    from swtui.cli import main
    from swtui.core.evidence import metrics

    text = metrics.eval_text()[:1500]
    own = tmp_path / "own.txt"
    own.write_text(text, encoding="utf-8")
    s = tiny_session("llama")
    s.ledger.prune(1, 5, 17)
    m = metrics.measure(s, "The capital", 4, text)
    path = write_snapshot(build_snapshot(s, prompt="The capital", max_new_tokens=4, measurement=m, eval_text=text),
                          tmp_path / "snaps")
    assert json.loads((path / "findings.json").read_text())["metrics"]["eval_text"]["chars"] == 1500
    assert main(["open", str(path), "--headless", "--json", "--device", "cpu"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["matches"]["perplexity"] == "other text" and any("--eval-file" in n for n in other["notes"])
    assert other["matches"]["stopwords"] == "other text"  # measured over the same windows
    assert main(["open", str(path), "--headless", "--json", "--device", "cpu", "--eval-file", str(own)]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["matches"] == {"state": True, "weights": True, "generation": True, "perplexity": True,
                               "stopwords": True}


def test_the_report_gives_each_ratio_its_interval_tokens_and_worst_control():
    """report.md of the committed example snapshot: the super weight's row carries its interval, the
    tokens it was measured on and the worst of its 5 controls, not the ratio alone."""
    from pathlib import Path

    from swtui.core.snapshot.report import markdown_report

    (example,) = Path(__file__).resolve().parents[2].glob("snapshots/*/findings.json")
    data = json.loads(example.read_text())
    (row,) = [line for line in markdown_report(data).splitlines() if "down_proj[507, 1229]" in line]
    sw = next(s for s in data["super_weights"] if (s["layer"], s["row"], s["col"]) == (11, 507, 1229))
    lo, hi = sw["ppl_ratio_ci95"]
    assert f"[{lo:.3g}, {hi:.3g}], {sw['evidence']['treatment']['eval_tokens']}" in row
    assert "(of 5)" in row and "**super weight**" in row
