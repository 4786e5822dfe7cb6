"""RTN against hand-computed values, each grouping, clipping, restore; bitsandbytes on CPU."""

import pytest
import torch

from swtui.core.errors import QuantizationError
from swtui.core.quant.rtn import fake_quant_activation, rtn
from swtui.core.quant.session import apply_quant_config, parse_config

from support.builders import tiny_session


def test_rtn_hand_computed_2bit():
    # one group [0, 1, 2, 3.3]: min 0, max 3.3, 2 bits -> 3 steps, Δ = 1.1
    w = torch.tensor([[0.0, 1.0, 2.0, 3.3]])
    q = rtn(w, 2, "tensor")
    # (x - 0)/1.1 = 0, 0.909, 1.818, 3 -> round 0, 1, 2, 3 -> 0, 1.1, 2.2, 3.3
    torch.testing.assert_close(q, torch.tensor([[0.0, 1.1, 2.2, 3.3]]))


def test_rtn_asymmetric_with_negative_min():
    w = torch.tensor([[-1.0, -0.2, 0.4, 2.0]])  # Δ = 3/3 = 1 (2 bits): q = 0, 1, 1, 3
    torch.testing.assert_close(rtn(w, 2, "tensor"), torch.tensor([[-1.0, 0.0, 0.0, 2.0]]))


def test_rtn_8bit_error_bound_and_constant_group():
    torch.manual_seed(0)
    w = torch.randn(16, 32)
    q = rtn(w, 8, "tensor")
    step = (w.max() - w.min()) / 255
    assert (q - w).abs().max() <= step / 2 + 1e-6
    c = torch.full((4, 4), 0.75)
    assert torch.equal(rtn(c, 4, "tensor"), c)


def test_groupings():
    w = torch.tensor([[0.0, 3.0, 100.0, 103.0], [10.0, 13.0, 50.0, 53.0]])
    per_channel = rtn(w, 2, "channel")  # row 0: Δ = 103/3; row 1: Δ = 43/3
    assert per_channel[0, 1].item() == pytest.approx(0.0)
    blocks = rtn(w, 2, "block", 2)  # each pair is exact at its two ends
    torch.testing.assert_close(blocks, w)
    tiles = rtn(w, 2, "tile", 2)  # 2x2 tiles: [[0,3],[10,13]] and [[100,103],[50,53]]
    torch.testing.assert_close(tiles[:, :2], torch.tensor([[0.0, 4.3333], [8.6667, 13.0]]), rtol=0, atol=1e-3)
    uneven = rtn(torch.arange(10.0).reshape(2, 5), 2, "block", 4)  # last block holds 2 elements
    assert uneven.reshape(-1)[8:].tolist() == [8.0, 9.0]
    with pytest.raises(QuantizationError):
        rtn(w, 2, "tile", 3)
    with pytest.raises(QuantizationError):
        rtn(w, 2, "block", 1)
    with pytest.raises(QuantizationError):
        rtn(w, 9, "tensor")


def test_clipping():
    w = torch.tensor([[0.1, -0.1, 0.1, -0.1, 0.1, -0.1, 0.1, 50.0]])
    a = w.abs()
    thr = 1.0 * a.std(unbiased=False) + a.mean()
    q = rtn(w, 8, "tensor", clip_z=1.0)
    assert q.max().item() == pytest.approx(thr.item(), rel=1e-2)


def test_activation_replace_restore():
    a = torch.tensor([0.5, -0.25, 0.75, 1000.0, 0.0])
    mask = a.abs() > 100
    naive = fake_quant_activation(a, 8)
    kept = fake_quant_activation(a, 8, mask)
    assert kept[3].item() == 1000.0  # restored exactly
    assert (kept[:3] - a[:3]).abs().max() < 0.01  # the rest keeps its resolution
    assert (naive[:3] - a[:3]).abs().max() > 0.2  # without REPLACE, the outlier eats the range


def test_clip_statistics_include_the_held_out_super_weight():
    """The paper's code computes z over the whole group, the super weight included (hand-computed)."""
    w = torch.tensor([[0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, 8.0]])
    held = torch.zeros_like(w, dtype=torch.bool)
    held[0, 7] = True
    a = w.abs()[0].tolist()  # mean 1.35; population std 2.5282...
    mean = sum(a) / 8
    std = (sum((v - mean) ** 2 for v in a) / 8) ** 0.5
    thr = 1.0 * std + mean  # 3.878: nothing but the super weight exceeds it
    q = rtn(w, 8, "tensor", clip_z=1.0, held=held)
    assert q[0, 7].item() == 8.0  # restored in full precision
    # the rest: held-out position set to 0, range [-0.6, 0.7] -> Δ = 1.3/255
    delta = 1.3 / 255
    expect = [round((v + 0.6) / delta) * delta - 0.6 for v in w[0, :7].tolist()]
    torch.testing.assert_close(q[0, :7], torch.tensor(expect), rtol=0, atol=1e-6)
    # without the super weight in the statistics the threshold would be far lower and clip 0.7
    a7 = a[:7]
    m7 = sum(a7) / 7
    thr_without = (sum((v - m7) ** 2 for v in a7) / 7) ** 0.5 + m7
    assert thr_without < 0.7 < thr
    assert q[0, 6].item() == pytest.approx(0.7, abs=delta / 2)


def test_super_weight_held_out_and_exact_return():
    s = tiny_session("llama")
    s.name_super_weight(1, 5, 17)
    h0 = s.current_hash()
    apply_quant_config(s, {"method": "rtn", "bits": 3, "group": "channel", "keep_super_weights": True})
    assert s.quant_config["held_out"] == [[1, 5, 17]]
    assert s.ledger.current_value(1, 5, 17) == s.ledger.pristine_value(1, 5, 17)
    w_before = s.adapter.site(1).down.weight.detach().clone()
    apply_quant_config(s, {"method": "rtn", "bits": 3, "group": "channel"})
    assert s.quant_config["held_out"] == []
    assert not torch.equal(s.adapter.site(1).down.weight, w_before)
    s.ledger.prune(1, 5, 17)  # quantized model = Q(edited weights): the held-out value is the edited one
    apply_quant_config(s, {"method": "rtn", "bits": 3, "group": "tensor", "keep_super_weights": True})
    assert s.ledger.current_value(1, 5, 17) == 0.0
    s.reset()
    assert s.current_hash() == h0


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4", "bnb-fp4"])
def test_bitsandbytes_on_cpu(method):
    from swtui.core.evidence import metrics

    s = tiny_session("llama")
    s.name_super_weight(1, 5, 17)
    w0 = s.adapter.site(1).down.weight[5, 17].item()
    h0 = s.current_hash()
    label = apply_quant_config(s, {"method": method, "keep_super_weights": True})
    assert "bnb" in label and s.ledger.is_packed(1)
    mod = s.model.get_submodule(s.adapter.site(1).down_name)
    assert "bitsandbytes" in type(mod).__module__
    ppl = metrics.perplexity(s, "A short text to score under bitsandbytes.")
    assert ppl["base"] > 0 and ppl["current"] > 0
    # the held-out super weight's contribution comes back through the activation hook: the packed
    # module driven by the one-hot input e_col outputs the weight read before quantizing
    (names, ctx), = s.variant_runs(("current",))
    x = torch.zeros(1, 1, 128)
    x[..., 17] = 1
    with ctx, torch.no_grad():
        y = s.adapter.site(1).down(x)
        packed_alone = s.adapter.site(1).down.forward(x)  # no hooks: the quantized weight only
    assert y[0, 0, 5].item() == pytest.approx(w0, rel=1e-3)
    assert abs(packed_alone[0, 0, 5].item() - w0) > 0.5  # zeroed before packing: the hook matters
    apply_quant_config(s, None)
    assert s.current_hash() == h0 and not s.ledger.corrections


def test_bad_configs():
    for bad in ({"method": "gptq"}, {"bits": 1}, {"group": "rows"}, {"group": "block", "block": 1},
                {"clip_z": -1.0}, {"act_bits": 12}, {"unknown": 1}):
        with pytest.raises(QuantizationError):
            parse_config(bad)
