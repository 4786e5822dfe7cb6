"""Exactness of the A/B activation correction, the probe's statistics, and hook hygiene."""

import pytest
import torch

from swtui.core.evidence import generation, metrics
from swtui.core.edits.hooks import count_hooks
from swtui.core.detection.probe import probe_down_proj
from support.builders import tiny_session


def _logits(session, text="Apple Inc. is a worldwide tech company."):
    ids = session.encode(text)
    return session.model(input_ids=ids, use_cache=False).logits[0]


EDITS = [("prune",), ("scale", 0.5), ("scale", 2.0), ("scale", 10.0), ("scale", 100.0), ("scale", 1000.0),
         ("sa",)]


def _apply(s, edit):
    if edit[0] == "scale":
        s.ledger.scale(1, 5, 17, edit[1])
    else:
        s.ledger.prune(1, 5, 17)
        s.ledger.scale(2, 3, 4, 3.0)
        if edit[0] == "sa":
            s.set_sa_restore(1, 5, 17, True)


#: how far the baseline row may sit from a solo run of the untouched model. At the edited layers
#: it *is* the solo computation (`ExactBase`); elsewhere the only difference left is that CPU GEMM
#: kernels are not batch-size invariant (the same rows at batch 1 and 2 differ by an ulp on some
#: shapes, with no edit at all). Bounds: the fidelity issue's (1e-9 relative perplexity in
#: float32, 1e-4 in bf16/fp16, the same greedy tokens).
REL = {"float32": 1e-9, "bfloat16": 1e-4, "float16": 1e-4}


def _rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("arch", ["llama", "opt", "gpt2"])
def test_batched_base_row_equals_a_solo_untouched_run(arch, dtype):
    """The baseline row of a batched A/B is the untouched model, in every dtype and for any edit."""
    s = tiny_session(arch, dtype=dtype)
    text = "Apple Inc. is a worldwide tech company. It makes phones."
    prompts = ["The cat sat on", "One of the"]
    solo_gen = generation.generate(s, "The capital", 6, variants=("current",))["current"]
    solo_ppl = metrics.perplexity(s, text, variants=("current",))["current"]
    solo_sw = metrics.stopword_mass(s, prompts, variants=("current",)).mass["current"]
    for edit in EDITS:
        s.reset()
        _apply(s, edit)
        assert s.ab_mode == "batched"
        assert generation.generate(s, "The capital", 6)["base"] == solo_gen, edit
        assert _rel(metrics.perplexity(s, text)["base"], solo_ppl) <= REL[dtype], edit
        assert _rel(metrics.stopword_mass(s, prompts).mass["base"], solo_sw) <= max(REL[dtype], 1e-6), edit
    assert count_hooks(s.model) == 0


@torch.no_grad()
def test_batched_current_row_equals_the_edited_model(tiny):
    tiny.ledger.scale(1, 5, 17, 0.25)
    tiny.ledger.prune(2, 3, 4)
    edited = _logits(tiny)
    ids = tiny.encode("Apple Inc. is a worldwide tech company.")
    (names, ctx), = tiny.variant_runs(("base", "current"))
    with ctx:
        both = tiny.model(input_ids=ids.expand(2, -1), use_cache=False).logits
    assert names == ("base", "current")
    assert torch.equal(both[1], edited)


def _channel(s, layer, row, text, variant):
    seen = []
    (names, ctx), = s.variant_runs((variant,))
    with ctx, torch.no_grad():
        h = s.adapter.site(layer).down.register_forward_hook(lambda m, a, o: seen.append(o[0, :, row].clone()))
        try:
            s.model(input_ids=s.encode(text), use_cache=False)
        finally:
            h.remove()
    return seen[0]


def test_sa_restore_writes_the_pristine_value_at_the_per_sequence_position():
    s = tiny_session("llama")
    text = "Apple Inc. is a worldwide tech company."
    pristine = _channel(s, 1, 5, text, "current")
    pos = int(pristine.abs().argmax())
    s.ledger.prune(1, 5, 17)
    s.set_sa_restore(1, 5, 17, True)
    restored = _channel(s, 1, 5, text, "current")
    s.sa_restore.clear()
    pruned = _channel(s, 1, 5, text, "current")
    assert restored[pos].item() == pytest.approx(pristine[pos].item(), rel=1e-5)
    others = [i for i in range(len(pristine)) if i != pos]
    assert torch.equal(restored[others], pruned[others])  # only the SA position is written


def test_sa_restore_sums_two_super_weights_on_one_row():
    """Two super weights feed row 5 of layer 1: each alone is a partial sum; restore the whole."""
    s = tiny_session("llama")
    site = s.adapter.site(1)
    with torch.no_grad():  # make col 17's outlier partner: col 3 fed by the same direction
        up = dict(site.layer.named_modules())
        for name in ("mlp.gate_proj", "mlp.up_proj"):
            up[name].weight[3] = up[name].weight[17]
        site.down.weight[:, 3] *= 1e-4
        site.down.weight[5, 3] = 5.0
    s = type(s)(s.loaded)  # a fresh ledger over the modified weights
    text = "Apple Inc. is a worldwide tech company."
    pristine = _channel(s, 1, 5, text, "current")
    pos = int(pristine.abs().argmax())
    s.ledger.prune(1, 5, 17)
    s.ledger.prune(1, 5, 3)
    s.set_sa_restore(1, 5, 17, True)
    s.set_sa_restore(1, 5, 3, True)
    restored = _channel(s, 1, 5, text, "current")
    assert restored[pos].item() == pytest.approx(pristine[pos].item(), rel=1e-5)
    s.set_sa_restore(1, 5, 3, False)  # one term alone restores only part of it
    partial = _channel(s, 1, 5, text, "current")
    assert abs(partial[pos].item()) < 0.8 * abs(pristine[pos].item())


def test_opt_rows_are_batch_rows_not_tokens():
    """OPT's fc2 sees [batch·tokens, H]: the baseline row must still be batch row 0."""
    s = tiny_session("opt")
    ids = s.encode("Apple Inc. is a worldwide tech company.")
    with torch.no_grad():
        solo = s.model(input_ids=ids, use_cache=False).logits[0]
        s.ledger.prune(1, 5, 17)
        edited = s.model(input_ids=ids, use_cache=False).logits[0]
        (names, ctx), = s.variant_runs(("base", "current"))
        with ctx:
            both = s.model(input_ids=ids.expand(2, -1), use_cache=False).logits
    assert not torch.equal(solo, edited)
    assert torch.equal(both[0], solo) and torch.equal(both[1], edited)


@torch.no_grad()
def test_probe_matches_full_activations(tiny):
    site = tiny.adapter.site(1)
    seen = {}
    h = site.down.register_forward_hook(lambda m, a, o: seen.update(x=a[0].clone(), y=o.clone()))
    ids = tiny.encode("Apple Inc. is a worldwide tech company.")
    tiny.model(input_ids=ids, use_cache=False)
    h.remove()
    probe = probe_down_proj(tiny.model, tiny.adapter, ids)
    s = probe.layers[1]
    x, y = seen["x"][0], seen["y"][0]
    assert s.in_max == pytest.approx(x.abs().max().item())
    assert s.out_max == pytest.approx(y.abs().max().item())
    assert x.abs()[s.in_token, s.in_channel] == x.abs().max()
    assert y.abs()[s.out_token, s.out_channel] == y.abs().max()
    assert count_hooks(tiny.model) == 0


def test_hooks_removed_when_forward_raises(tiny):
    def explode(module, args, output):
        raise RuntimeError("boom in a hook")

    h = tiny.adapter.site(2).down.register_forward_hook(explode)
    ids = tiny.encode("hello")
    with pytest.raises(RuntimeError):
        probe_down_proj(tiny.model, tiny.adapter, ids)
    h.remove()
    assert count_hooks(tiny.model) == 0
    tiny.ledger.prune(1, 5, 17)
    h = tiny.adapter.site(3).down.register_forward_hook(explode)
    with pytest.raises(RuntimeError):
        metrics.perplexity(tiny, "some text for perplexity")
    h.remove()
    assert count_hooks(tiny.model) == 0


def test_generation_ab_rows_match_single_runs(tiny):
    tiny.ledger.prune(1, 5, 17)
    both = generation.generate(tiny, "The capital", 8)
    cur = generation.generate(tiny, "The capital", 8, variants=("current",))
    base = generation.generate(tiny, "The capital", 8, variants=("base",))
    assert both == {"base": base["base"], "current": cur["current"]}


def test_generation_cancel(tiny):
    import threading

    from swtui.core.errors import Cancelled

    ev = threading.Event()
    seen = []

    def on_token(variant, tid, text):
        seen.append(tid)
        ev.set()

    with pytest.raises(Cancelled):
        generation.generate(tiny, "The capital", 50, cancel=ev, on_token=on_token)
    assert 0 < len(seen) <= 2
    assert count_hooks(tiny.model) == 0


def test_empty_prompt_refused(tiny):
    from swtui.core.errors import UserInputError

    with pytest.raises(UserInputError):
        tiny.encode("   ")


def test_long_prompt_truncated_with_notice(tiny):
    notices = []
    ids = tiny.encode("word " * 2000, notices=notices)
    assert ids.shape[-1] == tiny.context_length and "truncated" in notices[0]


def test_zero_write_ablates_the_activation_in_the_edited_row_only():
    s = tiny_session("llama")
    text = "Apple Inc. is a worldwide tech company."
    before = _channel(s, 1, 5, text, "current")
    s.set_zero_write(1, 5, True)
    assert s.ab_mode == "batched"
    assert _channel(s, 1, 5, text, "current").abs().max() == 0  # layer 1 writes nothing on channel 5
    assert torch.equal(_channel(s, 1, 5, text, "base"), before)  # the baseline is untouched
    ppl = metrics.perplexity(s, text)
    assert ppl["base"] != ppl["current"]
    s.reset()
    assert torch.equal(_channel(s, 1, 5, text, "current"), before) and not s.zero_writes


def test_zero_write_from_the_command_line(capsys):
    import json

    from swtui.cli import main

    assert main(["ablate", "tiny:llama", "--zero-write", "1,5", "--json", "--max-new-tokens", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["zero_writes"] == [[1, 5]]
    assert report["edited"]["perplexity"] != report["baseline"]["perplexity"]
    assert main(["ablate", "tiny:llama", "--zero-write", "1,999"]) == 2  # out of range: one line, exit 2


def test_restore_sa_on_a_fresh_model_from_the_command_line(capsys):
    """The head check used to run inside the batched hooks on a fresh model: row 1 of a batch of 1."""
    import json

    from swtui.cli import main

    assert main(["ablate", "tiny:llama", "--prune", "1,5,17", "--restore-sa", "--json", "--max-new-tokens", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sa_restored"] == [[1, 5, 17]] and report["ab_mode"] == "batched"
