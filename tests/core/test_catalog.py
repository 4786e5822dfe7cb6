from swtui.core import catalog


def test_normalize_is_robust():
    assert catalog.normalize("meta-llama/Llama-2-7b-hf") == catalog.normalize("llama-2-7B-HF")
    assert catalog.normalize("SmolLM2-135M-Instruct.Q4_1") == catalog.normalize("smollm2_135m_instruct")


def test_lookup_by_any_spelling():
    assert catalog.lookup("huggyllama/llama-7b")["super_weights"] == [[2, 3968, 7003]]
    assert catalog.lookup("MISTRALAI/mistral-7b-v0.1")["super_weights"] == [[1, 2070, 7310]]
    assert catalog.lookup("Llama-2-7b-chat") is None  # a different model is not a substring match
    assert catalog.lookup("llama-7b-something-else") is None


def test_label_matches():
    labels = catalog.label_matches("SmolLM2-135M-Instruct", [(11, 507, 1229), (28, 507, 678)])
    assert list(labels) == [(11, 507, 1229)]
