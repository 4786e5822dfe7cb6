import pytest
import torch

from swtui.core.errors import UserInputError
from swtui.core.ledger import weights_hash


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


def test_tensor_edits_compose_with_element_edits(tiny):
    h0 = weights_hash(tiny.model)
    site = tiny.adapter.site(1)
    name = site.weight_name
    orig = site.down.weight[5, 17].item()
    tiny.ledger.scale(1, 5, 17, 3.0)
    tiny.ledger.replace_tensor(name, torch.zeros_like(site.down.weight))
    # the element edit stays on top of the tensor edit, computed from the pristine value
    assert site.down.weight[5, 17].item() == pytest.approx(3.0 * orig)
    assert site.down.weight[0, 0].item() == 0.0
    assert tiny.ledger.pristine_value(1, 5, 17) == orig
    tiny.ledger.restore(1, 5, 17)  # back to the quantized (here: zero) value under the edit
    assert site.down.weight[5, 17].item() == 0.0
    tiny.ledger.prune(1, 5, 17)
    tiny.ledger.restore_tensor(name)
    assert site.down.weight[5, 17].item() == 0.0  # prune survives leaving the tensor edit
    assert site.down.weight[0, 0].item() != 0.0
    tiny.ledger.restore_all()
    assert weights_hash(tiny.model) == h0


def test_gpt2_conv1d_edits_use_transposed_storage():
    from conftest import tiny_session

    s = tiny_session("gpt2")
    site = s.adapter.site(1)
    assert site.transposed
    orig = site.down.weight[17, 5].item()  # Conv1D stores [in, out]
    assert s.ledger.pristine_value(1, 5, 17) == orig
    s.ledger.prune(1, 5, 17)
    assert site.down.weight[17, 5].item() == 0.0
    s.ledger.restore_all()
    assert site.down.weight[17, 5].item() == orig
