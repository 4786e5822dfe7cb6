"""The detector finds a planted super weight in every architecture, whatever the storage layout."""

import pytest

from swtui.core.detection.detect import DetectOptions, detect
from swtui.core.model.tiny import TINY_ARCHS, Plant

from support.builders import tiny_session

P = Plant()


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_planted_super_weight_is_found(arch):
    session = tiny_session(arch)
    before = session.current_hash()
    result = detect(session, DetectOptions(impact=False))
    assert result.candidates, result.rounds
    first = result.candidates[0]
    assert first.key == (P.layer, P.row, P.col)
    assert first.value == pytest.approx(P.value)
    assert first.first_layer == P.layer
    assert first.persist_layers >= 2  # the super activation stays the residual max after its layer
    assert result.stop_reason
    assert session.current_hash() == before  # detection's temporary zeroing is undone exactly
    assert session.ledger.count == 0


def test_no_plant_no_super_weight():
    session = tiny_session("llama", plant=False)
    result = detect(session, DetectOptions(impact=False))
    assert result.candidates == []
    assert result.stop_reason == "no spike left above the threshold"


def test_impact_is_measured_per_candidate(tiny):
    result = detect(tiny, DetectOptions(impact=True, impact_threshold=0.0))
    cand = result.candidates[0]
    assert cand.ppl_base > 0 and cand.ppl_pruned > 0 and cand.ppl_pruned != cand.ppl_base
    # threshold 0: pruning it "hurts", and so does pruning its control weight: that is no verdict
    assert cand.ratio.effect(0.0) == "hurts" and cand.control.effect(0.0) == "hurts"
    assert cand.is_super is False and cand.verdict == "inconclusive"
    strict = detect(tiny, DetectOptions(impact=True, impact_threshold=1e9))
    assert strict.candidates[0].is_super is False and strict.super_weights == []


def test_detection_does_not_read_the_catalog(monkeypatch):
    import swtui.core.detection.catalog as catalog

    def boom(*a, **k):
        raise AssertionError("detection consulted the catalog")

    monkeypatch.setattr(catalog, "entries", boom)
    monkeypatch.setattr(catalog, "lookup", boom)
    session = tiny_session("llama")
    assert detect(session, DetectOptions(impact=False)).candidates[0].key == (P.layer, P.row, P.col)


def test_exact_attribution_picks_the_writing_column_not_the_largest_input():
    """A louder input channel (40) that W barely reads must not be named: col = argmax |x·W[row]|."""
    import torch

    from swtui.core.detection.detect import DetectOptions, detect

    s = tiny_session("llama")
    site = s.adapter.site(1)
    mlp = dict(site.layer.named_modules())
    with torch.no_grad():
        for name in ("mlp.gate_proj", "mlp.up_proj"):
            mlp[name].weight[40] = mlp[name].weight[17] * 1.5  # a larger input spike, same token
        site.down.weight[:, 40] = 1e-4
    s = type(s)(s.loaded)
    d = detect(s, DetectOptions(impact=False))
    stats = d.probe.layers[1]
    assert stats.in_channel == 40  # the old rule (largest |input|) would have named col 40
    assert d.candidates[0].key == (1, 5, 17)
    assert d.candidates[0].share > 0.99


def test_candidates_are_confirmed_across_prompts():
    from swtui.core.detection.detect import DetectOptions, confirmation_prompts, detect

    s = tiny_session("llama")
    d = detect(s, DetectOptions(impact=False))
    prompts = confirmation_prompts(DetectOptions().prompt)
    assert len(prompts) == 4 and len(set(prompts)) == 4
    cand = d.candidates[0]
    assert (cand.prompts_spiking, cand.prompts_total) == (4, 4)  # the planted SA is prompt-independent


def test_writers_of_one_channel_are_judged_together():
    """Two layers write channel 5 (a second plant at layer 2, same row): one group, pruned together."""
    from swtui.core.detection.detect import DetectOptions, detect
    from support.builders import tiny_llama_with_plants

    s = tiny_llama_with_plants(Plant(layer=1, row=5, col=17), Plant(layer=2, row=5, col=40, value=7.0, gain=20.0))
    d = detect(s, DetectOptions(impact=False))
    writers = {c.key for c in d.candidates if c.row == 5}
    assert {(1, 5, 17), (2, 5, 40)} <= writers
    (group,) = [g for g in d.groups if g.channel == 5]
    assert {tuple(m) for m in group.members} == writers and group.first_layer == 1
    assert group.sa_before > 1000 and group.sa_remaining < 0.1  # the writers carry the activation
    assert group.verdict == "below threshold" and group.ppl_pruned_together is None  # impact not measured
    assert s.ledger.count == 0


def test_a_candidate_spiking_on_some_prompts_only():
    """A weight whose activation fires on one byte (",") only: its layer spikes on exactly the
    confirmation prompts that contain a comma, and that is reported as such (2 of 4, not 4/4). Such
    an activation is not the prompt-independent super activation: it sits on a few tokens, so
    pruning the weight barely moves perplexity and the candidate is judged harmless."""
    import torch

    from swtui.core.detection.detect import DetectOptions, confirmation_prompts, detect
    from swtui.core.verdicts import BELOW as HARMLESS
    from support.builders import tiny_llama_triggered

    s = tiny_llama_triggered(",")
    opts = DetectOptions(prompt="Hello, world", max_rounds=1)
    prompts = confirmation_prompts(opts.prompt)
    with_comma = sum("," in p for p in prompts)
    assert (with_comma, len(prompts)) == (2, 4)  # the planted model's design: half of the prompts
    d = detect(s, opts)
    (cand,) = d.candidates
    assert cand.key == (1, 5, 17)
    assert (cand.prompts_spiking, cand.prompts_total) == (with_comma, len(prompts))
    # the verdict follows the impact, measured here on a copy with the weight zeroed by hand
    hand = tiny_llama_triggered(",")
    with torch.no_grad():
        hand.adapter.site(1).down.weight[5, 17] = 0.0
    from support.oracle import verdict_perplexity

    pruned = verdict_perplexity(hand, cand.evidence["treatment"]["windows"])
    assert cand.ppl_pruned == pytest.approx(pruned, rel=1e-4)  # batched A/B vs a solo run
    assert abs(pruned / cand.ppl_base - 1) < 0.05  # an activation on a few commas barely matters
    assert cand.verdict == HARMLESS and cand.is_super is False


def test_a_huge_last_layer_output_does_not_hide_an_early_super_weight(monkeypatch):
    """Remove-and-repeat's significance floor is 0.1x the largest output of the first round(0.75 x 8)
    = 6 layers (the published rule's restriction): layer 7's planted output, 26x layer 1's, would
    otherwise set a floor above the early super weight. Detection still never reads the catalog."""
    import swtui.core.detection.catalog as catalog
    from support.builders import tiny_llama_with_plants

    def boom(*a, **k):
        raise AssertionError("detection consulted the catalog")

    monkeypatch.setattr(catalog, "entries", boom)
    monkeypatch.setattr(catalog, "lookup", boom)
    s = tiny_llama_with_plants(Plant(layer=1, row=5, col=17), Plant(layer=7, row=30, col=60, value=600.0,
                                                                     direction_seed=5))
    d = detect(s, DetectOptions(impact=False, channels=False))
    out = [layer.out_max for layer in d.probe.layers]
    assert out[7] > 20 * out[1] and max(out[:7]) == out[1]
    assert [c.key for c in d.candidates][:1] == [(1, 5, 17)]
    assert d.significance_floor == pytest.approx(0.1 * out[1])
