"""Super experts by the published code's rule (Super Experts, Su et al. 2025, `eval_utils.py`):
calibration text, the first round(0.75 × layers) layers, shared experts ranked beside routed ones,
> the 99.5th percentile (numpy's linear interpolation) and > ⌊max/10⌋.

The planted model has enough experts that two can clear the 99.5th percentile (6 ranked layers ×
(34 routed + 1 shared) = 210 rows > 201) and three plants, each of which one ingredient of the old
rule (every layer, the 10-token probe prompt, routed experts only) gets wrong."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from swtui.core.model.tiny import Plant
from support.builders import session_of

LAYERS, EXPERTS = 8, 34
#: layer 0's routed expert 11, woken only by the byte 'v' (in the calibration text, not in the probe prompt)
TRIGGERED = Plant(layer=0, row=9, col=3, expert=11, value=0.3, direction_seed=77)
#: layer 3's shared expert (every token passes it)
SHARED_PLANT = Plant(layer=3, row=7, col=11, value=6.0, direction_seed=7)
#: layer 7's routed expert 5, 5× the others: in the last quarter of the layers, which the rule does not rank
LATE = Plant(layer=7, row=20, col=5, expert=5, value=60.0, direction_seed=99)


def _wake_on(model, tok, plant: Plant, byte: str) -> None:
    """Make layer-0 `plant` fire on `byte` alone: every other token's embedding, and layer 0's
    attention output, lose their component along the plant's direction d; `byte`'s embedding is d."""
    g = torch.Generator().manual_seed(plant.direction_seed)
    d = torch.randn(model.config.hidden_size, generator=g)
    d = d / d.norm()
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb -= torch.outer(emb @ d, d)
        emb[tok.convert_tokens_to_ids(byte)] = d
        o = model.model.layers[0].self_attn.o_proj.weight
        o -= torch.outer(d, d @ o)


_SESSION = {}


def planted():
    """tiny qwen2_moe, 8 layers of 34 routed experts and a shared one, with the three plants."""
    from swtui.core.model.tiny import build_tiny, plant_expert_super_weight, plant_shared_super_weight

    if "s" not in _SESSION:
        model, tok = build_tiny("qwen2_moe", None, layers=LAYERS, experts=EXPERTS)
        plant_expert_super_weight(model, TRIGGERED)
        plant_shared_super_weight(model, SHARED_PLANT)
        plant_expert_super_weight(model, LATE)
        _wake_on(model, tok, TRIGGERED, "v")
        _SESSION["s"] = session_of(model, tok, "tiny:qwen2_moe", f"tiny-qwen2_moe-{LAYERS}x{EXPERTS}")
    s = _SESSION["s"]
    s.reset()
    return s


def old_rule(session) -> list[tuple[int, int]]:
    """The rule as swtui had it, written out here: the probe prompt's routed experts of every layer,
    > numpy's 99.5th percentile and > 0.1× the largest."""
    from swtui.core.detection.detect import DEFAULT_PROMPT, run_probe

    rows = [(s.layer, r[0], r[2]) for s in run_probe(session, DEFAULT_PROMPT).layers for r in (s.experts or [])]
    values = np.array([v for _, _, v in rows])
    p = np.percentile(values, 99.5)
    return [(layer, e) for layer, e, v in sorted(rows, key=lambda r: -r[2]) if v > p and v > 0.1 * values.max()]


def _picks(found):
    return [(s.layer, s.expert) for s in found]


def test_the_rule_is_the_published_codes_on_synthetic_rows():
    """8 layers × 40 experts: 240 rows in the first round(8 × 0.75) = 6 layers, so the top two can clear
    the 99.5th percentile. 2.2 clears ⌊25/10⌋ = 2 (the code's `max // 10`) though not 0.1 × 25; layer
    7's 1000 is outside the ranked layers (ranked, ⌊1000/10⌋ = 100 would leave only itself)."""
    from swtui.core.detection.experts import find_super_experts, included_layers, percentile, ranked_rows

    values = [[0.01 * (1 + (7 * i + 3 * e) % 97) for e in range(40)] for i in range(8)]
    values[1][4], values[4][9], values[7][0] = 25.0, 2.2, 1000.0
    profile = SimpleNamespace(layers=[SimpleNamespace(layer=i, experts=[[e, 3, v, 0, 0, 0] for e, v in enumerate(row)])
                                      for i, row in enumerate(values)])
    ranked = [v for row in values[:6] for v in row]
    rows, fig = ranked_rows(profile)
    assert (fig.layers, fig.rows, fig.overall_max, fig.floor) == (6, 240, 25.0, 2.0)
    assert fig.percentile == pytest.approx(float(np.percentile(ranked, 99.5)))  # the reference's call
    assert _picks(find_super_experts(profile)) == [(1, 4), (4, 9)]
    assert _picks(find_super_experts(profile, include=1.0)) == [(7, 0)]
    assert [included_layers(n) for n in (2, 4, 6, 8, 10, 48)] == [2, 3, 4, 6, 8, 36]  # round half to even
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_the_published_rule_and_the_old_one_disagree_on_a_planted_model():
    """A scan names layer 0's 'v'-woken expert and layer 3's shared expert; the old rule names layer
    7's expert. Each ingredient matters: every layer ranked, the late expert wins; the probe prompt
    instead of calibration text, the 'v' expert is missed; routed experts only, the shared one is."""
    from swtui.core.detection.detect import DEFAULT_PROMPT, DetectOptions, detect
    from swtui.core.detection.expert_profile import calibration_windows, profile_experts
    from swtui.core.detection.experts import find_super_experts
    from swtui.core.model.moe import SHARED

    s = planted()
    d = detect(s, DetectOptions(impact=False))
    found = d.super_experts
    assert _picks(found["experts"]) == [(0, TRIGGERED.expert), (3, SHARED)]
    assert (found["layers_ranked"], found["rows_ranked"]) == (6, 6 * (EXPERTS + 1))
    assert found["calibration"]["tokens"] == 16 * 64 and "held_out" in found["calibration"]["source"]
    assert old_rule(s) == [(7, LATE.expert)]

    profile = d.expert_profile
    value = {(layer.layer, r[0]): r[2] for layer in profile.layers for r in layer.experts}
    assert value[(7, LATE.expert)] > 4 * value[(0, TRIGGERED.expert)]  # 10x would hide the others
    assert value[(0, TRIGGERED.expert)] > value[(3, SHARED)] > value[(0, TRIGGERED.expert)] / 10
    assert _picks(find_super_experts(profile, include=1.0)) == [(7, LATE.expert), (0, TRIGGERED.expert)]
    v = s.tokenizer.convert_tokens_to_ids("v")
    prompt = s.encode(DEFAULT_PROMPT).reshape(-1)
    assert not (prompt == v).any() and any((w == v).any() for w in calibration_windows(s)[0])
    assert _picks(find_super_experts(profile_experts(s, windows=[prompt]))) == [(3, SHARED)]
    routed_only = SimpleNamespace(layers=[SimpleNamespace(layer=x.layer, experts=[r for r in x.experts if r[0] >= 0])
                                          for x in profile.layers])
    assert _picks(find_super_experts(routed_only)) == [(0, TRIGGERED.expert)]


def test_a_pruned_shared_expert_goes_through_the_ledger_and_restores_bit_exactly():
    """Pruning the shared expert zeroes its whole down projection (and nothing of the routed
    experts'); the profile then finds it silent; restore-all gives the weights back bit for bit."""
    from swtui.core.detection.expert_profile import profile_experts
    from swtui.core.detection.experts import find_super_experts
    from swtui.core.model.moe import SHARED, shared_down_name

    s = planted()
    site = s.adapter.site(3)
    w = s.model.get_submodule(shared_down_name(site)).weight
    h0, w0, routed0 = s.current_hash(), w.detach().clone(), site.weight.detach().clone()
    s.ledger.set_pruned_experts({(3, SHARED)})
    assert not w.any() and torch.equal(site.weight, routed0) and s.ledger.count == 1
    pruned = profile_experts(s)
    assert pruned.layers[3].experts[-1][:3] == [SHARED, pruned.tokens, 0.0]
    assert _picks(find_super_experts(pruned)) == [(0, TRIGGERED.expert)]
    s.ledger.restore_all()
    assert torch.equal(w, w0) and s.current_hash() == h0
