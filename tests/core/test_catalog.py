from swtui.core.detection import catalog


def test_normalize_is_robust():
    assert catalog.normalize("meta-llama/Llama-2-7b-hf") == catalog.normalize("llama-2-7B-HF")
    assert catalog.normalize("SmolLM2-135M-Instruct.Q4_1") == catalog.normalize("smollm2_135m_instruct")


def test_lookup_by_any_spelling():
    assert list(catalog.published(catalog.lookup("huggyllama/llama-7b"))) == [(2, 3968, 7003)]
    assert catalog.lookup("MISTRALAI/mistral-7b-v0.1")["findings"][0] == {"source": "paper-table-2",
                                                                         "super_weights": [[1, 2070, 7310]]}
    assert catalog.lookup("Llama-2-7b-chat") is None  # a different model is not a substring match
    assert catalog.lookup("llama-7b-something-else") is None


def test_label_matches():
    labels = catalog.label_matches("SmolLM2-135M-Instruct", [(11, 507, 1229), (28, 507, 678)])
    assert list(labels) == [(11, 507, 1229)]
    assert labels[(11, 507, 1229)] == "SmolLM2-135M-Instruct (swtui 0.1.0, not independent)"
    mistral = catalog.label_matches("mistral-7b-v0.1", [(1, 2070, 7310)])[(1, 2070, 7310)]
    assert mistral == "Mistral-7B-v0.1 (paper-table-2, official-code, iterative-detector)"


def test_swtui_is_the_only_source_that_is_not_independent_and_every_source_says_where_it_is_from():
    srcs = catalog.sources()
    assert [k for k, v in srcs.items() if not v["independent"]] == ["swtui"]
    assert all(isinstance(v["independent"], bool) and v["what"] for v in srcs.values())
    for key in ("official-code", "iterative-detector", "census-2025"):  # a repository and its file
        assert "github.com/" in srcs[key]["where"], key
    assert "census_master.csv" in srcs["census-2025"]["where"]


def test_the_overall_verdict_counts_independent_sources_only(monkeypatch):
    own = {"source": "swtui", "version": "9", "super_weights": [[2, 9, 30]]}
    paper = {"source": "paper-table-2", "super_weights": [[2, 9, 31]]}
    monkeypatch.setattr(catalog, "entries", lambda: [{"name": "m", "aliases": ["m"], "findings": [own, paper]}])
    both = catalog.compare("m", [(2, 9, 30)], [])
    assert (both["agrees"], both["own"], both["independent"]) == ("no", "yes", 1)  # not "mixed": swtui's yes is its own
    assert both["summary"] == "paper-table-2: no (+1 unlisted); swtui 9 yes (not independent)"
    monkeypatch.setattr(catalog, "entries", lambda: [{"name": "m", "aliases": ["m"], "findings": [own]}])
    alone = catalog.compare("m", [(2, 9, 30)], [])
    assert alone["agrees"] is None and alone["basis"] == "only swtui's own earlier finding (not independent)"
    assert [s["independent"] for s in alone["sources"]] == [False]


def test_published_external_findings_for_the_census_models():
    def rows(name, key="rows"):
        (f,) = [f for f in catalog.lookup(name)["findings"] if f["source"] == "census-2025"]
        return f.get(key, [])

    assert rows("HuggingFaceTB/SmolLM2-135M") == [[11, 507]] and rows("HuggingFaceTB/SmolLM2-360M") == [[3, 87]]
    assert [7, 227] in rows("HuggingFaceTB/SmolLM2-1.7B")
    assert [rows(f"Qwen/Qwen2.5-{s}", "tested_rows") for s in ("0.5B", "1.5B", "3B", "7B")] == [
        [[21, 62]], [[26, 408]], [[30, 318]], [[26, 458]]]
    iterative = {e["name"] for e in catalog.entries() if any(f["source"] == "iterative-detector" for f in e["findings"])}
    assert iterative == {"Llama-2-7B", "Llama-3.1-8B", "Mistral-7B-v0.1", "OLMo-1B-0724-hf", "OLMo-7B-0724-hf",
                         "Phi-3-mini-4k-instruct"}
    llama31 = catalog.lookup("meta-llama/Llama-3.1-8B")
    assert llama31 is not catalog.lookup("meta-llama/Meta-Llama-3-8B")  # 3.1 is not 3


def test_a_census_row_is_claimed_only_when_its_published_cost_clears_swtuis_threshold():
    """rows: exp(increase x baseline_loss) >= 1.5 (a perplexity ratio); tested_rows: below it."""
    import math

    seen = 0
    for entry in catalog.entries():
        for f in entry["findings"]:
            if f["source"] != "census-2025":
                continue
            pub = f["published"]
            ratios = [math.exp(inc * pub["baseline_loss"]) for inc in pub["increase"]]
            claimed, tested = f.get("rows", []), f.get("tested_rows", [])
            assert len(ratios) == len(claimed) + len(tested), entry["name"]
            assert all(r >= 1.5 for r in ratios[:len(claimed)]) and all(r < 1.5 for r in ratios[len(claimed):])
            seen += 1
    assert seen >= 10


def test_tested_rows_are_shown_and_never_expected():
    qwen = catalog.compare("Qwen2.5-0.5B", [], [])
    (src,) = qwen["sources"]
    assert src["agrees"] is None and src["missing"] == [] and src["tested"] == [{"row": [21, 62], "found": False}]
    assert qwen["agrees"] is None and qwen["basis"] == "no independent source lists a super weight here"
    hit = catalog.compare("Qwen2.5-0.5B", [(21, 62, 7)], [])["sources"][0]
    assert hit["tested"] == [{"row": [21, 62], "found": True}] and hit["agrees"] is None
