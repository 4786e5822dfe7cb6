"""Mixtures of experts with fused expert tensors (transformers 5.x): probing each routed expert,
weights addressed as (layer, row, col, expert), super experts, and what each path refuses."""

import json

import pytest
import torch

from swtui.core.errors import QuantizationError, SwtuiError, UserInputError
from swtui.core.model.tiny import MOE_ARCHS, Plant
from support.builders import offloaded_session, saved_tiny, tiny_session

PLANT = Plant()
SW = (PLANT.layer, PLANT.row, PLANT.col, PLANT.expert)  # (1, 5, 17, 2)
SESSIONS = {}


def session(arch="mixtral"):
    if arch not in SESSIONS:
        SESSIONS[arch] = tiny_session(arch)
    s = SESSIONS[arch]
    s.reset()
    return s


def _experts_call(s, layer, text="Apple Inc. is a worldwide tech company."):
    """(hidden, top_k_index, output) of layer `layer`'s experts module on `text`."""
    seen = {}

    def hook(module, args, kwargs, out):
        from swtui.core.model.moe import experts_call

        hidden, idx, weights = experts_call(args, kwargs)
        seen.update(hidden=hidden.clone(), idx=idx.clone(), weights=weights.clone(), out=out.clone())

    site = s.adapter.site(layer)
    h = site.down.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            s.model(input_ids=s.encode(text), use_cache=False)
    finally:
        h.remove()
    return seen


@pytest.mark.parametrize("arch", ["mixtral", "gpt_oss"])  # [E, D, I] with F.linear, and transposed with biases
def test_the_probe_recomputes_each_routed_expert_as_the_model_does(arch):
    """The experts' outputs the probe recomputes, weighted by the routing and summed, are the experts
    module's own output: what the probe reads is what the model computed."""
    from swtui.core.model.moe import expert_io

    s = session(arch)
    site = s.adapter.site(1)
    call = _experts_call(s, 1)
    ios = expert_io(s.model, site.down_name, site.down, call["hidden"], call["idx"])
    total = torch.zeros_like(call["out"])
    for io in ios:
        total.index_add_(0, io.tokens, io.y * call["weights"][io.tokens, io.slots, None])
    torch.testing.assert_close(total, call["out"], rtol=1e-6, atol=1e-5)
    assert sum(int(io.tokens.numel()) for io in ios) == call["idx"].numel()  # every routing slot, once


@pytest.mark.parametrize("arch", MOE_ARCHS)
def test_scan_finds_the_planted_expert_weight_and_its_super_expert(arch):
    from swtui.cli.scan import scan_report
    from swtui.core.detection.detect import DetectOptions, detect

    s = session(arch)
    h0 = s.current_hash()
    d = detect(s, DetectOptions(eval_tokens=1008))
    report = json.loads(json.dumps(scan_report(s, d)))  # the `scan --json` form
    assert s.current_hash() == h0  # detection's temporary pruning is undone
    layer1 = report["layers"][1]
    assert layer1["expert"] == PLANT.expert and layer1["out_channel"] == PLANT.row
    assert any(e[0] == PLANT.expert and e[1] > 0 for e in layer1["experts"])  # routed tokens counted
    (sw,) = [c for c in report["super_weights"]]
    assert (sw["layer"], sw["row"], sw["col"], sw["expert"]) == SW
    assert sw["verdict"] == "super weight" and sw["ppl_ratio_ci95"][0] >= 1.5
    assert sw["control_key"][3] == PLANT.expert and sw["control_ratio_ci95"][1] < 1.5  # same expert's tensor
    assert f"[expert {PLANT.expert}]" in sw["name"]
    (se,) = report["super_experts"]["experts"]
    assert (se["layer"], se["expert"], se["verdict"]) == (PLANT.layer, PLANT.expert, "super expert")
    assert se["out_max"] > se["percentile"] and se["out_max"] > 0.1 * se["overall_max"]
    assert se["control_expert"] not in (None, PLANT.expert) and se["control_ratio_ci95"][1] < 1.5
    assert sw["super_expert"]["expert"] == PLANT.expert


def test_scan_cli_json_names_the_expert(capsys):
    from swtui.cli import main

    assert main(["scan", "tiny:qwen3_moe", "--json", "--eval-tokens", "400"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(c["layer"], c["row"], c["col"], c["expert"], c["verdict"]) for c in report["super_weights"]] == \
        [(*SW, "super weight")]
    found = report["super_experts"]
    assert [(e["layer"], e["expert"]) for e in found["experts"]] == [(1, 2)]
    # on calibration text over the first round(4 x 0.75) = 3 layers (tests/core/test_super_experts.py)
    assert (found["calibration"]["tokens"], found["layers_ranked"], found["rows_ranked"]) == (1024, 3, 12)


def test_an_expert_weight_edit_touches_that_expert_only_and_restores_bit_exactly():
    from swtui.core.evidence.metrics import perplexity

    s = session("mixtral")
    site = s.adapter.site(1)
    h0, w0 = s.current_hash(), site.weight.detach().clone()
    assert s.ledger.pristine_value(*SW) == pytest.approx(PLANT.value)
    s.ledger.prune(*SW)
    changed = (site.weight != w0).nonzero().tolist()
    assert changed == [[PLANT.expert, PLANT.row, PLANT.col]]  # [expert, row, col] of the fused tensor
    assert s.ledger.current_value(*SW) == 0.0 and s.ledger.summary()[0]["expert"] == PLANT.expert
    ppl = perplexity(s)
    assert ppl["current"] > 5 * ppl["base"]  # the model collapses
    s.ledger.scale(*SW[:3], 0.5, expert=PLANT.expert)
    assert s.ledger.current_value(*SW) == pytest.approx(PLANT.value / 2)
    s.ledger.restore(*SW)
    assert s.current_hash() == h0 and torch.equal(site.weight, w0)


def test_pruning_an_expert_is_an_edit_restored_exactly():
    from swtui.core.evidence.metrics import perplexity

    s = session("olmoe")
    site = s.adapter.site(1)
    h0, w0 = s.current_hash(), site.weight.detach().clone()
    s.ledger.set_pruned_experts({(1, PLANT.expert)})
    assert s.ledger.count == 1 and s.ledger.pruned_experts == {(1, PLANT.expert)}
    assert not site.weight[PLANT.expert].any() and torch.equal(site.weight[:PLANT.expert], w0[:PLANT.expert])
    ppl = perplexity(s)
    assert ppl["current"] > 5 * ppl["base"]
    s.ledger.prune(1, 0, 0, 0)  # another expert's weight, beside the pruned expert
    s.ledger.set_pruned_experts(set())
    assert torch.equal(site.weight[PLANT.expert], w0[PLANT.expert])
    s.ledger.restore(1, 0, 0, 0)
    assert s.current_hash() == h0
    s.ledger.set_pruned_experts({(1, 3)})
    s.reset()
    assert s.current_hash() == h0 and s.ledger.pruned_experts == frozenset()
    with pytest.raises(SwtuiError):
        s.ledger.set_pruned_experts({(1, 4)})  # 4 experts: 0..3


def test_rtn_quantizes_each_expert_and_keeps_the_held_out_expert_weight():
    from swtui.core.quant.session import apply_quant_config

    s = session("qwen2_moe")
    site = s.adapter.site(1)
    h0, w0 = s.current_hash(), site.weight.detach().clone()
    apply_quant_config(s, {"method": "rtn", "bits": 2, "group": "tensor", "keep_super_weights": True,
                           "held_out": [list(SW)]})
    w = site.weight.detach()
    assert w[SW[3], SW[1], SW[2]] == w0[SW[3], SW[1], SW[2]]  # held out: full precision
    for e in range(site.experts):  # each expert on its own grid: at most 2^2 levels
        assert len(torch.unique(w[e])) <= 4 + (e == SW[3])
    s.ledger.prune(*SW)
    assert s.ledger.current_value(*SW) == 0.0
    apply_quant_config(s, None)
    s.ledger.restore(*SW)
    assert s.current_hash() == h0


def test_what_fused_experts_refuse_leaves_the_state_unchanged():
    from swtui.core.quant.session import apply_quant_config

    s = session("deepseek_v3")
    h0 = s.current_hash()
    for cfg in ({"method": "bnb-int8"}, {"method": "bnb-nf4"}, {"method": "rtn", "bits": 4, "act_bits": 8}):
        with pytest.raises(QuantizationError):
            apply_quant_config(s, cfg)
    with pytest.raises(UserInputError, match="fused experts"):
        s.set_sa_restore(*SW[:3], True)
    with pytest.raises(UserInputError, match="fused experts"):
        s.set_sa_restore(*SW, on=True)  # as the engine's ToggleSA and `ablate --restore-sa` call it
    with pytest.raises(UserInputError, match="name the expert"):
        s.ledger.prune(*SW[:3])
    with pytest.raises(UserInputError, match="dense"):
        s.ledger.prune(0, 5, 17, 2)  # deepseek_v3's layer 0 is a dense MLP
    s.ledger.prune(0, 5, 17)  # and takes a dense key
    s.ledger.restore(0, 5, 17)
    assert s.current_hash() == h0 and s.quant_config is None and not s.sa_restore


@pytest.fixture(scope="module")
def mixtral_dir(tmp_path_factory):
    return saved_tiny(tmp_path_factory.mktemp("mixtral-tiny"), "mixtral")


def test_an_offloaded_expert_weight_is_edited_for_real(mixtral_dir, tmp_path):
    from swtui.core.detection.probe import probe_down_proj

    s = offloaded_session(mixtral_dir, "mixtral", tmp_path / "offload")
    site = s.adapter.site(1)
    assert site.is_moe and site.weight.device.type == "meta"  # layer 1's experts really are offloaded
    h0 = s.current_hash()
    ids = s.encode("Apple Inc. is a worldwide tech company.")
    before = probe_down_proj(s.model, s.adapter, ids).layers[1]
    assert (before.expert, before.out_channel, before.attr_col) == (PLANT.expert, PLANT.row, PLANT.col)
    assert s.ledger.pristine_value(*SW) == pytest.approx(PLANT.value)
    s.ledger.prune(*SW)
    assert s.ledger.current_value(*SW) == 0.0
    after = probe_down_proj(s.model, s.adapter, ids).layers[1]
    assert after.out_max < 0.1 * before.out_max  # the computation saw the pruned weight
    s.reset()
    assert s.current_hash() == h0 and not s.ledger.rewritten
    again = probe_down_proj(s.model, s.adapter, ids).layers[1]
    assert again.out_max == before.out_max


def test_a_snapshot_of_expert_edits_and_a_pruned_expert_reopens_to_the_same_weights(tmp_path):
    from swtui.core.snapshot.snapshot import apply_snapshot, build_snapshot, load_snapshot, write_snapshot

    s = session("mixtral")
    s.name_super_weight(*SW[:3], expert=SW[3])
    s.ledger.scale(*SW, 0.5)  # a fused key, unpacked, then the factor
    s.ledger.set_pruned_experts({(2, 1)})
    folder = write_snapshot(build_snapshot(s), tmp_path)
    data = load_snapshot(folder)
    assert data["edits"][0]["expert"] == SW[3] and data["pruned_experts"] == [[2, 1]]
    assert data["super_weights"][0]["expert"] == SW[3]
    want = s.current_hash()
    fresh = tiny_session("mixtral")
    assert apply_snapshot(fresh, data) == []
    assert fresh.current_hash() == want and fresh.ledger.pruned_experts == {(2, 1)}
    s.reset()


def test_the_catalog_labels_a_published_expert_weight_by_its_expert():
    from swtui.core.detection.catalog import label_matches

    labels = label_matches("Qwen/Qwen3-30B-A3B", [(1, 940, 711, 68), (1, 940, 711, 67), (1, 940, 711)])
    assert list(labels) == [(1, 940, 711, 68)] and "super-experts-2025" in labels[(1, 940, 711, 68)]


def test_ablate_prunes_an_expert_as_its_own_arm_and_restores_exactly(capsys):
    from swtui.cli import main

    assert main(["ablate", "tiny:olmoe", "--prune-expert", "1,2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    arm = report["treatment"]
    assert arm["pruned_experts"] == [[1, 2]] and arm["ratio_ci95"][0] >= 1.5  # the planted expert: collapse
    assert report["restored_exactly"] is True
