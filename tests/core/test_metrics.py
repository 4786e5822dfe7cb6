"""Perplexity windows (BOS in each), the full head for models that scale their logits."""

import math

import torch

from swtui.core.evidence import metrics
from swtui.core.model.loading import LoadedModel
from swtui.core.edits.session import Session
from swtui.core.model.tiny import byte_tokenizer


def _bos_tokenizer():
    from tokenizers.processors import TemplateProcessing

    tok = byte_tokenizer()
    bos = tok.bos_token
    tok._tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.bos_token_id)])
    return tok


def _session(model, tokenizer):
    return Session(LoadedModel(model.eval(), tokenizer, source="test", name="test", kind="tiny", device="cpu",
                               dtype="float32"))


def _reference_ppl(model, windows):
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in windows:
            logits = model(input_ids=w[None], use_cache=False).logits[0, :-1].double()
            nll += float(torch.nn.functional.cross_entropy(logits, w[1:], reduction="sum"))
            count += w.shape[0] - 1
    return math.exp(nll / count)


def test_every_window_starts_with_bos():
    from swtui.core.model.tiny import build_tiny

    model, _ = build_tiny("llama")
    tok = _bos_tokenizer()
    from swtui.core.evidence.corpus import bos_id

    assert bos_id(tok) == tok.bos_token_id
    s = _session(model, tok)
    text = "The quick brown fox jumps over the lazy dog. " * 3
    assert metrics._plain_head(model) is True  # checked once, before we count windows
    seen = []
    h = model.model.register_forward_pre_hook(lambda m, a, k: seen.append(k["input_ids"][0].clone()), with_kwargs=True)
    try:
        ppl = metrics.perplexity(s, text, variants=("current",), window=32)["current"]
    finally:
        h.remove()
    body = tok(text, add_special_tokens=False).input_ids
    assert len(seen) == math.ceil(len(body) / 31) >= 4
    assert all(int(w[0]) == tok.bos_token_id for w in seen)
    windows = [torch.tensor([tok.bos_token_id] + body[i:i + 31]) for i in range(0, len(body), 31)]
    assert abs(ppl - _reference_ppl(model, windows)) < 1e-6 * ppl  # float32 losses vs float64


def test_a_logit_scale_goes_through_the_full_head():
    import transformers as tf

    torch.manual_seed(0)
    tok = byte_tokenizer()
    cfg = tf.GraniteConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, logits_scaling=8.0,
                           max_position_embeddings=128)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    s = _session(model, tok)
    assert metrics._plain_head(model) is False
    text = "Granite divides its logits by a scale."
    ppl = metrics.perplexity(s, text, variants=("current",))["current"]
    ids = torch.tensor(tok(text, add_special_tokens=False).input_ids)
    assert abs(ppl - _reference_ppl(model, [ids])) < 1e-6 * ppl  # float32 losses vs float64


def test_a_measurement_on_a_text_is_one_pass_over_its_windows(tiny):
    """`measure` on a text: the perplexity and the stopword mass over every position of the same
    windows, in one pass (the stopword contexts are the text's positions, not the bundled corpus's)."""
    tiny.ledger.prune(1, 5, 17)
    text = metrics.eval_text()[:900]
    metrics.check_head(tiny)  # the head check's own forwards happen once per model, before
    forwards = []
    hook = tiny.model.base_model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        m = metrics.measure(tiny, None, text=text)
    finally:
        hook.remove()
    losses = metrics.token_losses(tiny, text)
    assert m.stopwords.contexts == losses["base"].numel() == losses["current"].numel()
    assert m["current"].perplexity == metrics.perplexity(tiny, text)["current"]
    windows = len(metrics._windows(tiny, text, 512))
    assert 0 < len(forwards) <= windows * (1 if tiny.ab_mode == "batched" else 2)
