from swtui.core import catalog


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
    assert labels[(11, 507, 1229)] == "SmolLM2-135M-Instruct (swtui 0.1.0)"
    mistral = catalog.label_matches("mistral-7b-v0.1", [(1, 2070, 7310)])[(1, 2070, 7310)]
    assert mistral == "Mistral-7B-v0.1 (paper-table-2, official-code, iterative-analysis)"
