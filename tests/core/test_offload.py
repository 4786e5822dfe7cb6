"""Big-model dispatch with offload, forced on this CPU machine: edits reach the real weights."""

import pytest
import torch

from swtui.core.evidence import metrics
from swtui.core.errors import QuantizationError
from swtui.core.quant.session import apply_quant_config

from support.builders import offloaded_session, saved_tiny, tiny_bytes

SW = (1, 5, 17)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return saved_tiny(tmp_path_factory.mktemp("llama-tiny"), "llama")


def _offloaded(model_dir, tmp_path):
    s = offloaded_session(model_dir, "llama", tmp_path / "offload")
    assert s.adapter.site(1).down.weight.device.type == "meta"  # layer 1 really is offloaded
    return s


def _layer_output(s, layer, text="Apple Inc. is a worldwide tech company."):
    seen = []
    h = s.adapter.site(layer).down.register_forward_hook(lambda m, a, o: seen.append(o.detach().clone()))
    try:
        with torch.no_grad():
            s.model(input_ids=s.encode(text), use_cache=False)
    finally:
        h.remove()
    return seen[0]


def test_prune_on_an_offloaded_layer_changes_its_output_and_restores_exactly(model_dir, tmp_path):
    s = _offloaded(model_dir, tmp_path)
    h0 = s.current_hash()
    before = _layer_output(s, 1)
    assert s.ledger.pristine_value(*SW) == pytest.approx(6.0)
    s.ledger.prune(*SW)
    assert s.ledger.current_value(*SW) == 0.0
    after = _layer_output(s, 1)
    assert (before[..., 5] - after[..., 5]).abs().max() > 1.0  # the super activation is gone
    assert torch.equal(before[..., :5], after[..., :5])  # nothing else moved
    assert s.current_hash() != h0
    ppl = metrics.perplexity(s, "A short text, scored before and after the prune.")
    assert s.ab_mode == "two passes" and ppl["base"] != ppl["current"]
    s.reset()
    assert s.current_hash() == h0
    assert not s.ledger.rewritten and s.ab_mode == "batched"  # the override is dropped, not kept as a copy
    assert torch.equal(_layer_output(s, 1), before)


def test_rtn_on_offloaded_layers_and_bnb_refused_before_changes(model_dir, tmp_path):
    s = _offloaded(model_dir, tmp_path)
    h0 = s.current_hash()
    apply_quant_config(s, {"method": "rtn", "bits": 2, "group": "tensor"})
    assert s.current_hash() != h0
    s.ledger.prune(*SW)
    quant_then_prune = s.current_hash()
    s.reset()
    s.ledger.prune(*SW)
    apply_quant_config(s, {"method": "rtn", "bits": 2, "group": "tensor"})
    assert s.current_hash() == quant_then_prune
    s.reset()
    with pytest.raises(QuantizationError, match="offloaded"):
        apply_quant_config(s, {"method": "bnb-int8"})
    assert s.current_hash() == h0 and s.quant_config is None


def test_scan_with_forced_offload_finds_the_planted_weight(model_dir, tmp_path, capsys):
    import json

    from swtui.cli import main

    size = tiny_bytes("llama")
    assert main(["scan", str(model_dir), "--device", "cpu", "--device-map", "auto", "--max-memory",
                 f"cpu={size // 3}", "--offload-folder", str(tmp_path / "off"), "--json"]) == 0
    offloaded = json.loads(capsys.readouterr().out)
    assert main(["scan", str(model_dir), "--device", "cpu", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [(c["layer"], c["row"], c["col"]) for c in offloaded["candidates"]] == [SW]
    # remove-and-repeat and the impact check pruned the offloaded weight for real: same figures
    for key in ("ppl_base", "ppl_pruned", "zscore", "out_act"):
        assert offloaded["candidates"][0][key] == pytest.approx(plain["candidates"][0][key], rel=1e-9), key
