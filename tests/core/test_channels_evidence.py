"""Channels first, with intervals and controls (issue: answers a researcher can defend).

Intervals: `swtui.core.evidence.stats` against an independent computation. Channels: planted tiny models
of the shapes real models showed — a massive channel no single weight carries, a post-norm channel
written by every layer with no spiking writer, a cancelling late writer — judged with the defaults.
"""

import math

import pytest
import torch

from swtui.core.detection.channels import find_massive
from swtui.core.detection.detect import DetectOptions, LogScale, SpikeRule, detect
from swtui.core.evidence.stats import HURTS, INCONCLUSIVE, NO_EFFECT, Ratio, paired_ratio
from swtui.core.verdicts import ACTIVATION, BELOW, SUPER
from swtui.core.detection.probe import LayerStats, ProbeResult

from support.builders import tiny_llama_writers

#: tiny models judge on this many tokens of the bundled text (seconds, and intervals still narrow)
TOKENS = 1024


# -- intervals -------------------------------------------------------------------------------
def test_ratio_is_the_perplexity_ratio_and_a_constant_shift_has_no_spread():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(500, generator=g, dtype=torch.float64) * 4
    r = paired_ratio(base, base + math.log(2.0))
    assert r.value == pytest.approx(2.0) and r.lo == pytest.approx(2.0) and r.hi == pytest.approx(2.0)
    assert r.tokens == 500
    same = paired_ratio(base, base)
    assert (same.value, same.lo, same.hi) == (1.0, 1.0, 1.0)
    # the point is exp(mean) of each arm, computed here independently
    arm = base + torch.rand(500, generator=g, dtype=torch.float64)
    ppl = lambda x: math.exp(float(x.mean()))  # noqa: E731
    assert paired_ratio(base, arm).value == pytest.approx(ppl(arm) / ppl(base), rel=1e-12)


def test_interval_covers_the_truth_and_narrows_with_tokens():
    """Noisy per-token differences around a true log-ratio of 0.1: the 95% interval holds the true
    ratio in most seeds, and is narrower on 16× the tokens."""
    truth = math.exp(0.1)
    covered, widths = 0, {}
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        for n in (320, 5120):
            base = torch.rand(n, generator=g, dtype=torch.float64) * 5
            arm = base + 0.1 + torch.randn(n, generator=g, dtype=torch.float64)
            r = paired_ratio(base, arm)
            assert r.lo <= r.value <= r.hi
            widths.setdefault(n, []).append(math.log(r.hi / r.lo))
            covered += n == 5120 and r.lo <= truth <= r.hi
    assert covered >= 34  # ~95% of 40
    assert sum(widths[5120]) < 0.4 * sum(widths[320])


def test_blocks_widen_the_interval_of_correlated_tokens():
    """Neighbouring tokens' loss differences are correlated (AR(1), rho 0.9): resampling single
    tokens would understate the spread; 16-token blocks must give a wider interval."""
    from swtui.core.evidence import stats as evidence

    g = torch.Generator().manual_seed(5)
    noise = torch.randn(4096, generator=g, dtype=torch.float64)
    d = torch.empty_like(noise)
    d[0] = noise[0]
    for i in range(1, len(d)):
        d[i] = 0.9 * d[i - 1] + noise[i] * math.sqrt(1 - 0.81)
    base = torch.zeros(4096, dtype=torch.float64)
    blocked = paired_ratio(base, d)
    single = paired_ratio(base, d, block=1)
    assert math.log(blocked.hi / blocked.lo) > 2.5 * math.log(single.hi / single.lo)
    assert evidence.BLOCK == 16


def test_too_few_tokens_carry_no_verdict():
    # under MIN_WINDOWS windows the window bootstrap draws no interval: [0, ∞], so no effect is claimed
    from swtui.core.evidence.stats import MIN_WINDOWS, window_ratio

    base = [torch.zeros(63, dtype=torch.float64) for _ in range(MIN_WINDOWS)]
    arm = [b + 2.0 + 0.01 * i for i, b in enumerate(base)]
    assert window_ratio(base[1:], arm[1:]).effect(1.5) == INCONCLUSIVE
    assert window_ratio(base, arm).effect(1.5) == HURTS
    assert Ratio(float("inf"), float("inf"), float("inf"), 5000).effect(1.5) == INCONCLUSIVE


def test_interval_is_seeded_and_pairs_are_required():
    g = torch.Generator().manual_seed(3)
    base, arm = torch.rand(300, generator=g), torch.rand(300, generator=g)
    assert paired_ratio(base, arm) == paired_ratio(base, arm)
    with pytest.raises(ValueError, match="unpaired"):
        paired_ratio(base, arm[:-1])


def test_a_verdict_compares_the_interval_not_the_point():
    assert Ratio(2.0, 1.6, 2.4, 1000).effect(1.5) == HURTS
    assert Ratio(1.2, 1.1, 1.4, 1000).effect(1.5) == NO_EFFECT
    assert Ratio(1.6, 1.2, 2.1, 1000).effect(1.5) == INCONCLUSIVE  # the point clears it, the interval does not
    assert Ratio(1.4, 1.1, 1.7, 1000).effect(1.5) == INCONCLUSIVE


# -- the spike rule with a quarter of the layers outliers ------------------------------------------
def _probe(ins, outs) -> ProbeResult:
    return ProbeResult("p", [], [LayerStats(i, a, 0, 0, b, 0, 0, b, 0.0, 0) for i, (a, b) in enumerate(zip(ins, outs))])


def test_spike_rule_survives_a_quarter_of_the_layers_spiking():
    """The shape of a 24-layer model that broke the rule: six layers with large maxima (three early,
    three late), the others |in| 2–40, |out| 2–18. Every one of the six must spike."""
    normal_in = [2 + 38 * i / 17 for i in range(18)]
    normal_out = [2 + 16 * ((i * 7) % 18) / 17 for i in range(18)]
    ins = [normal_in[0], 345, 182, 137] + normal_in[1:15] + [390, 390, 390] + normal_in[15:]
    outs = [normal_out[0], 947, 584, 195] + normal_out[1:15] + [664, 506, 163] + normal_out[15:]
    assert len(ins) == len(outs) == 24
    rule = SpikeRule.from_probe(_probe(ins, outs), DetectOptions())
    assert [s.layer for s in rule.spikes(_probe(ins, outs))] == [1, 2, 3, 18, 19, 20]
    # the first early layer is a 32× input spike over the median of all layers
    assert rule.scores(_probe(ins, outs).layers[1])[0] >= 2.5


def test_spike_rule_still_needs_a_spike():
    """Layers that are merely spread out (a 20× range, no outliers) do not spike."""
    ins = [2 + 38 * i / 23 for i in range(24)]
    outs = [2 + 16 * ((i * 5) % 24) / 23 for i in range(24)]
    rule = SpikeRule.from_probe(_probe(ins, outs), DetectOptions())
    assert rule.spikes(_probe(ins, outs)) == []
    assert LogScale.of([1.0] * 24).spread == 0.5  # the floor


# -- channels ------------------------------------------------------------------------------------
def _opts(**kw) -> DetectOptions:
    return DetectOptions(eval_tokens=TOKENS, **kw)


def test_a_massive_channel_no_single_weight_carries():
    """Channel 5 written at layer 1 by one weight and at layer 2 spread over 32 weights (every token
    leans on the writers' input direction): the layer-1 weight writes most of the peak, yet neither
    it alone nor the carriers together matter, as the others make up for it; zeroing the channel's
    MLP writes at every layer does, and a random channel zeroed the same way does not."""
    s = tiny_llama_writers((1, (17,), 4.0), (2, tuple(range(50, 82)), 12.0), shift=0.05)
    d = detect(s, _opts(max_rounds=2))
    (m,) = d.channels
    assert m.channel == 5 and m.persist_layers >= 3 and m.first_layer == 1
    shares = {w.layer: w for w in m.writers}
    assert set(shares) == {1, 2} and all(w.role == "carrier" for w in m.writers)
    assert shares[1].share > 0.5 and shares[1].weight_share > 0.99 and shares[2].weight_share < 0.1
    (g,) = [g for g in d.groups if g.channel == 5]
    assert {(1, 5, 17), (2, 5, shares[2].col)} <= {tuple(k) for k in g.carriers}
    assert g.pruned_together.effect(1.5) == NO_EFFECT
    assert g.write_zeroed.effect(1.5) == HURTS and g.control.effect(1.5) == NO_EFFECT
    assert g.control_channel != 5
    assert g.verdict == ACTIVATION
    for c in d.candidates:
        assert c.ratio.hi < 1.5 and c.control_key is not None and c.control_key[1] not in (5, c.row)
        assert c.verdict == (ACTIVATION if c.row == 5 else BELOW)


def test_channel_ablation_covers_every_layer_not_only_the_writers():
    """The same channel, written at layers 1–3 only, is zeroed at every layer: 8 (layer, 5) pairs, in
    the all-token arm and in the massive-positions arm alike."""
    from swtui.core.detection import impact

    seen = []
    original = impact.channel_claims

    def spy(group, energy, exclude, n_layers):
        claims = original(group, energy, exclude, n_layers)
        seen.extend(claims)
        return claims

    s = tiny_llama_writers((1, (17,), 6.0), (5, (23,), -3.0))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impact, "channel_claims", spy)
        detect(s, _opts(max_rounds=1))
    positions, tokens = seen[0], seen[1]
    assert sorted(tokens.treatment.edit.zero_writes) == [(layer, 5) for layer in range(8)]
    assert sorted(positions.treatment.edit.zero_at) == [(layer, 5, 5) for layer in range(8)]
    assert len(positions.controls) >= 5 and all(len(c.edit.zero_at) == 8 for c in positions.controls)


def test_a_cancelling_late_writer_is_labelled_and_not_a_carrier():
    s = tiny_llama_writers((1, (17,), 6.0), (5, (23,), -3.0))
    (m,) = find_massive(s, DetectOptions().prompt)
    roles = {w.layer: w.role for w in m.writers}
    assert roles[1] == "carrier" and roles[5] == "canceller"
    assert [w.sign for w in m.writers if w.layer == 5] == [-1]
    d = detect(s, _opts())
    late = next(c for c in d.candidates if c.key == (5, 5, 23))
    assert late.role == "canceller"
    (g,) = [g for g in d.groups if g.channel == 5]
    assert (5, 5, 23) not in {tuple(k) for k in g.carriers} and (1, 5, 17) in {tuple(k) for k in g.carriers}
    first = next(c for c in d.candidates if c.key == (1, 5, 17))
    assert first.verdict == SUPER and first.ratio.lo >= 1.5 and first.control.hi < 1.5


def test_a_post_norm_channel_every_layer_writes_without_a_spiking_writer():
    """A Gemma-3 whose post-FFN norms favour channel 40 in every layer (gain 60), no planted weight:
    no layer's raw down_proj output spikes, the residual channel is massive, many layers write it,
    and zeroing those writes matters while a random channel does not."""
    import transformers as tf

    from swtui.core.model.tiny import byte_tokenizer, damp_head, set_norm_gain
    from support.builders import session_of

    tok = byte_tokenizer()
    v = len(tok)
    cfg = tf.Gemma3TextConfig(vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=8,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                              sliding_window=64, bos_token_id=v - 1, eos_token_id=v - 1, pad_token_id=v - 1)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    for layer in model.model.layers:
        gains = torch.ones(64)
        gains[40] = 60.0
        set_norm_gain(layer.post_feedforward_layernorm, gains)
    damp_head(model, 40, 10.0)
    s = session_of(model, tok, "tiny:gemma3", "tiny-gemma3-written-everywhere")
    d = detect(s, DetectOptions())  # the default budget: at 1024 tokens the positions arm is undecided
    assert d.spike_layers() == []
    (m,) = [m for m in d.channels if m.channel == 40]
    assert len(m.writers) >= 3 and m.persist_layers >= 4
    (g,) = [g for g in d.groups if g.channel == 40]
    # the verdict rests on the writes zeroed where the channel is massive, beside energy-matched channels
    assert g.massive is not None and g.positions_zeroed.lo >= 1.5 and g.control.hi < g.positions_zeroed.lo
    assert len(g.evidence["positions"]["controls"]) == 5
    assert g.write_zeroed.effect(1.5) == HURTS  # the every-token arm, reported beside it
    assert g.verdict == ACTIVATION


# -- the verdict table ----------------------------------------------------------------------------
class _C:
    def __init__(self, verdict, is_super=False):
        self.verdict, self.is_super = verdict, is_super


class _R:
    """A claim's outcome, as channel_verdict reads it."""
    def __init__(self, outcome, kind="carriers pruned together"):
        from swtui.core.evidence.plan import ClaimKind

        self.outcome = outcome
        self.claim = type("Claim", (), {"kind": ClaimKind(kind)})()


@pytest.mark.parametrize("carriers,together,positions,want", [
    ([_C(SUPER, True)], None, "clears", SUPER),
    ([_C(INCONCLUSIVE), _C(BELOW)], "clears", None, "super weight group"),
    ([_C(BELOW), _C(BELOW)], "not beyond", None, INCONCLUSIVE),  # a control as bad as the carriers
    ([_C(BELOW), _C(BELOW)], "no control", None, INCONCLUSIVE),  # no control: no verdict
    ([_C(BELOW)], "below", "clears", ACTIVATION),
    ([_C(BELOW)], "below", "not beyond", INCONCLUSIVE),
    ([_C(BELOW), _C(BELOW)], "undecided", "clears", INCONCLUSIVE),  # weights unclear
    ([_C(BELOW)], "below", "below", BELOW),
    ([_C(BELOW)], "below", "undecided", INCONCLUSIVE),
    ([_C(INCONCLUSIVE)], "undecided", "below", INCONCLUSIVE),
])
def test_channel_verdicts_follow_their_definitions(carriers, together, positions, want):
    from swtui.core.detection.groups import WriterGroup
    from swtui.core.detection.impact import channel_verdict
    from swtui.core.evidence.plan import Outcome

    o = {"clears": Outcome.CLEARS, "not beyond": Outcome.NOT_BEYOND_CONTROLS, "no control": Outcome.NO_CONTROL,
         "below": Outcome.BELOW, "undecided": Outcome.UNDECIDED}
    g = WriterGroup(5, [], 0, 1.0, 0.0, massive={"peak": 1.0})
    t = None if together is None else _R(o[together])
    p = None if positions is None else _R(o[positions], "writes zeroed at the massive positions")
    assert channel_verdict(g, carriers, t, p) == want
