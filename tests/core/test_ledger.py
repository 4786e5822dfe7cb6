"""The edit ledger: weights as a function of the state, all-or-nothing transitions, exact restore."""

import threading

import pytest
import torch

from swtui.core.errors import Cancelled, QuantizationError, UserInputError
from swtui.core.edits.keys import weights_hash
from swtui.core.quant.session import WeightQuantizer, apply_quant_config, parse_config
from support.builders import tiny_session

W4 = {"method": "rtn", "bits": 4, "group": "tensor"}


def test_prune_scale_restore_bit_exact(tiny):
    h0 = weights_hash(tiny.model)
    w = tiny.adapter.site(1).down.weight
    orig = w[5, 17].item()
    tiny.ledger.prune(1, 5, 17)
    assert w[5, 17].item() == 0.0
    tiny.ledger.scale(1, 5, 17, 2.5)
    assert w[5, 17].item() == pytest.approx(orig * 2.5)
    tiny.ledger.scale(2, 3, 4, 0.5)
    assert weights_hash(tiny.model) != h0
    assert tiny.ledger.verify() == []
    tiny.ledger.restore(1, 5, 17)
    assert w[5, 17].item() == orig
    tiny.ledger.restore_all()
    assert weights_hash(tiny.model) == h0 and tiny.ledger.count == 0


def test_scale_rejects_non_finite(tiny):
    for bad in ("nan", "inf", "-inf", "two", None, 1e9):
        with pytest.raises(UserInputError):
            tiny.ledger.scale(1, 5, 17, bad)
    assert tiny.ledger.count == 0


def test_prune_quantize_unprune_gives_the_quantized_pristine_weight(tiny):
    """Issue case 1: unprune under quantization must not leave a quantized 0 behind."""
    tiny.ledger.prune(1, 5, 17)
    apply_quant_config(tiny, W4)
    tiny.ledger.restore(1, 5, 17)
    after_path = tiny.current_hash()
    value = tiny.ledger.current_value(1, 5, 17)
    tiny.reset()
    apply_quant_config(tiny, W4)
    assert tiny.current_hash() == after_path
    assert value == tiny.ledger.current_value(1, 5, 17) and abs(value) > 1.0


def test_quantize_then_prune_equals_prune_then_quantize(tiny):
    apply_quant_config(tiny, W4)
    tiny.ledger.prune(1, 5, 17)
    a = tiny.current_hash()
    tiny.reset()
    tiny.ledger.prune(1, 5, 17)
    apply_quant_config(tiny, W4)
    assert tiny.current_hash() == a


def test_restore_under_bitsandbytes_keeps_every_original(tiny):
    """Issue case 2: prune, switch to bnb, restore that weight, restore-all: pristine hash."""
    h0 = tiny.current_hash()
    tiny.ledger.prune(1, 5, 17)
    apply_quant_config(tiny, {"method": "bnb-int8"})
    assert tiny.ledger.is_packed(1)
    assert tiny.ledger.restore(1, 5, 17)  # re-packs layer 1 from the pristine tensor
    assert tiny.ledger.edits == {}
    tiny.reset()
    assert tiny.current_hash() == h0


def test_sa_restore_under_bitsandbytes_runs(tiny):
    """Issue case 3: SA restore with a packed module computes W0 − W_now from the packed weight."""
    from swtui.core.evidence import metrics

    tiny.name_super_weight(1, 5, 17)
    apply_quant_config(tiny, {"method": "bnb-nf4", "keep_super_weights": True})
    tiny.ledger.prune(1, 5, 17)
    tiny.set_sa_restore(1, 5, 17, True)
    ppl = metrics.perplexity(tiny, "A short text to score with the super activation restored.")
    assert all(v > 0 for v in ppl.values())


def test_failed_quantization_changes_nothing(tiny):
    tiny.ledger.prune(1, 5, 17)
    apply_quant_config(tiny, W4)
    before = (tiny.current_hash(), tiny.quant_config, tiny.ledger.edits)

    class Exploding(WeightQuantizer):
        calls = 0

        def dense(self, name, module, w):
            Exploding.calls += 1
            if Exploding.calls == 5:
                raise QuantizationError("boom at the fifth tensor")
            return super().dense(name, module, w)

    cfg = parse_config({"method": "rtn", "bits": 2, "group": "channel", "held_out": []})
    with pytest.raises(QuantizationError):
        tiny.ledger.set_quantizer(Exploding(cfg, tiny.adapter))
    assert Exploding.calls == 5
    assert (tiny.current_hash(), tiny.quant_config, tiny.ledger.edits) == before


def test_cancelled_quantization_changes_nothing(tiny):
    h0 = tiny.current_hash()
    cancel = threading.Event()
    seen = []

    def progress(stage, frac):
        seen.append(stage)
        if len(seen) == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        apply_quant_config(tiny, W4, progress, cancel)
    assert tiny.current_hash() == h0 and tiny.quant_config is None and not tiny.ledger.rewritten


def test_pristine_copies_are_kept_on_the_cpu(tiny):
    apply_quant_config(tiny, W4)
    assert tiny.ledger._saved and all(t.device.type == "cpu" for t in tiny.ledger._saved.values())


def test_nonsw_control_is_computed_from_pristine_weights(tiny):
    from swtui.core.edits.ablation import prune_nonsw

    h0 = tiny.current_hash()
    apply_quant_config(tiny, {"method": "rtn", "bits": 2, "group": "tensor"})
    a = prune_nonsw(tiny, 5, {(1, 5, 17)})
    with_quant_first = tiny.current_hash()
    tiny.reset()
    b = prune_nonsw(tiny, 5, {(1, 5, 17)})
    apply_quant_config(tiny, {"method": "rtn", "bits": 2, "group": "tensor"})
    assert a.pruned == b.pruned and tiny.current_hash() == with_quant_first
    tiny.reset()
    assert tiny.current_hash() == h0


def test_gpt2_conv1d_edits_use_transposed_storage():
    s = tiny_session("gpt2")
    site = s.adapter.site(1)
    assert site.transposed
    orig = site.down.weight[17, 5].item()  # Conv1D stores [in, out]
    assert s.ledger.pristine_value(1, 5, 17) == orig
    s.ledger.prune(1, 5, 17)
    assert site.down.weight[17, 5].item() == 0.0
    s.ledger.restore_all()
    assert site.down.weight[17, 5].item() == orig


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_scale_rounds_once_in_the_weight_dtype(dtype):
    s = tiny_session("llama", dtype=dtype)
    p = s.ledger.pristine_scalar((1, 5, 17))
    s.ledger.scale(1, 5, 17, 1.37)
    want = (p.double() * 1.37).to(p.dtype)
    assert s.adapter.site(1).down.weight[5, 17].item() == want.item()
    assert torch.equal(s.ledger.pristine_scalar((1, 5, 17)), p)
