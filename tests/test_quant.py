"""RTN against hand-computed values, each grouping, clipping, restore; bitsandbytes on CPU."""

import pytest
import torch

from swtui.core.errors import QuantizationError
from swtui.core.quant import fake_quant_activation, rtn
from swtui.core.quant_session import apply_quant_config, parse_config

from conftest import tiny_session


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


def test_super_weight_held_out_and_exact_return():
    s = tiny_session("llama")
    s.name_super_weight(1, 5, 17)
    h0 = s.current_hash()
    apply_quant_config(s, {"method": "rtn", "bits": 3, "group": "tensor", "keep_super_weights": True})
    assert s.ledger.current_value(1, 5, 17) == s.ledger.pristine_value(1, 5, 17)
    other = s.adapter.site(1).down.weight[0, 0].item()
    apply_quant_config(s, {"method": "rtn", "bits": 3, "group": "tensor"})
    assert s.ledger.current_value(1, 5, 17) != s.ledger.pristine_value(1, 5, 17) or other
    s.ledger.prune(1, 5, 17)  # an element edit stays on top of quantization
    apply_quant_config(s, {"method": "rtn", "bits": 3, "group": "tensor", "keep_super_weights": True})
    assert s.ledger.current_value(1, 5, 17) == 0.0
    apply_quant_config(s, None)
    s.ledger.restore_all()
    assert s.current_hash() == h0


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4", "bnb-fp4"])
def test_bitsandbytes_on_cpu(method):
    from swtui.core import metrics

    s = tiny_session("llama")
    s.name_super_weight(1, 5, 17)
    h0 = s.current_hash()
    label = apply_quant_config(s, {"method": method, "keep_super_weights": True})
    assert "bnb" in label and s.ledger.modules
    mod = s.model.get_submodule(s.adapter.site(1).down_name)
    assert "bitsandbytes" in type(mod).__module__
    ppl = metrics.perplexity(s, "A short text to score under bitsandbytes.")
    assert ppl["base"] > 0 and ppl["current"] > 0
    # the held-out super weight's contribution comes back exactly through the activation hook:
    # the packed module, driven by the one-hot input e_col, outputs W[row, col] at `row`
    (names, ctx), = s.variant_runs(("current",))
    x = torch.zeros(1, 1, 128)
    x[..., 17] = 1
    with ctx, torch.no_grad():
        y = s.adapter.site(1).down(x)
    assert y[0, 0, 5].item() == pytest.approx(s.ledger.pristine_value(1, 5, 17), rel=1e-3)
    apply_quant_config(s, None)
    assert s.current_hash() == h0 and not s.current_hook_factories


def test_bad_configs():
    for bad in ({"method": "gptq"}, {"bits": 1}, {"group": "rows"}, {"group": "block", "block": 1},
                {"clip_z": -1.0}, {"act_bits": 12}, {"unknown": 1}):
        with pytest.raises(QuantizationError):
            parse_config(bad)
