"""Comparisons and sweeps: each variant's figures equal a solo run of its configuration, and the
session's own state comes back exactly (also after a cancel)."""

import threading

import pytest

from swtui.core.errors import Cancelled, UserInputError
from swtui.core.quant.session import apply_quant_config
from swtui.core.evidence.sweeps import quant_sweep, scale_sweep
from swtui.core.evidence.variants import Variant, check_variants, compare, measure

from support.builders import tiny_needing_its_sa

SW = (1, 5, 17)
NAIVE = {"method": "rtn", "bits": 4, "group": "tensor", "block": None}
AWARE = {"method": "rtn", "bits": 4, "group": "tensor", "block": None, "clip_z": 3.0, "keep_super_weights": True}


@pytest.fixture
def s():
    session = tiny_needing_its_sa("llama")
    session.name_super_weight(*SW, label="planted")
    return session


def test_each_variant_equals_a_solo_run_and_the_state_comes_back(s):
    s.ledger.scale(2, 7, 3, 1.5)  # a current scalar edit the variants sit on (or not)
    apply_quant_config(s, {"method": "rtn", "bits": 8, "group": "channel", "block": None})  # the session's own
    before = (s.current_hash(), s.quant_config, dict(s.ledger.edits))
    variants = [Variant("naive", NAIVE), Variant("aware", AWARE), Variant("aware, unedited", AWARE, with_edits=False)]
    seen = []
    got = compare(s, variants, prompt="Hello", max_new_tokens=4, on_result=lambda n, m: seen.append(n))
    assert seen == ["baseline", "naive", "aware", "aware, unedited"]
    assert (s.current_hash(), s.quant_config, dict(s.ledger.edits)) == before

    assert got["baseline"] == measure(s, "base", "Hello", 4)
    for v in variants:
        edits = dict(s.ledger.edits)
        if not v.with_edits:
            for key in edits:
                s.ledger.set_edit(key, None)
        apply_quant_config(s, v.config)
        assert got[v.name] == measure(s, "current", "Hello", 4), v.name  # bit-for-bit the same figures
        for key, edit in edits.items():
            s.ledger.set_edit(key, edit)
    # the comparison is the paper's: holding the super weight out beats naive RTN per tensor
    assert got["aware"].perplexity < got["naive"].perplexity
    assert got["naive"].perplexity != got["baseline"].perplexity


def test_variants_are_validated_before_any_work(s):
    with pytest.raises(UserInputError):
        check_variants([])
    with pytest.raises(UserInputError):
        check_variants([Variant("a", NAIVE)] * 2)
    with pytest.raises(UserInputError):
        check_variants([Variant(str(i), NAIVE) for i in range(4)])
    with pytest.raises(Exception, match="bits"):
        check_variants([Variant("bad", dict(NAIVE, bits=1))])


def test_cancel_leaves_the_state_as_it_was(s):
    s.ledger.prune(*SW)
    before = (s.current_hash(), s.quant_config, dict(s.ledger.edits))
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        compare(s, [Variant("a", NAIVE), Variant("b", AWARE, with_edits=False)],
                on_result=lambda name, m: cancel.set() if name == "a" else None, cancel=cancel)
    assert (s.current_hash(), s.quant_config, dict(s.ledger.edits)) == before


def test_scale_sweep_rows_are_the_scaled_model(s):
    s.ledger.scale(*SW, 2.0)  # its own edit is put back after the sweep
    before = s.current_hash()
    rows = scale_sweep(s, SW, [0, 1, 1.5])
    assert [r.factor for r in rows] == [0.0, 1.0, 1.5]
    assert s.current_hash() == before and s.ledger.edit(SW).factor == 2.0
    s.ledger.prune(*SW)
    assert rows[0].perplexity == measure(s, "current").perplexity
    s.ledger.scale(*SW, 1.5)
    assert rows[2].perplexity == measure(s, "current").perplexity
    s.ledger.restore(*SW)
    assert rows[1].perplexity == measure(s, "current").perplexity
    assert rows[0].perplexity > 1.5 * rows[1].perplexity  # pruning the planted SW hurts
    assert rows[0].ratio.lo > 1.5 and rows[1].ratio.value == 1.0


def test_quant_sweep_holds_the_super_weight_out(s):
    rows = quant_sweep(s, 4, [None, 64], 3.0)
    assert [r.label for r in rows] == ["tensor", "64"]
    assert s.quant_config is None
    apply_quant_config(s, AWARE)
    assert rows[0].sw_aware == measure(s, "current").perplexity
    assert rows[0].sw_aware < rows[0].naive
    # the paired ratio is the two perplexities' ratio, its interval around it; a float source confounds nothing
    ratio = rows[0].sw_aware_vs_naive
    assert ratio.value == pytest.approx(rows[0].sw_aware / rows[0].naive, rel=1e-9)
    assert ratio.lo <= ratio.value <= ratio.hi and ratio.tokens > 320
    assert rows[0].confound is None


def _hand_quantized(s, bits, block, clip_z, held):
    """A copy of the pristine model with every decoder linear quantized by the test's own RTN
    (`ref_rtn`), as a session of its own: W`bits`, blocks of `block` (None: per tensor)."""
    import copy

    import torch

    from support.builders import session_of
    from support.oracle import ref_rtn

    model = copy.deepcopy(s.model)
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            for rel, mod in layer.named_modules():
                if isinstance(mod, torch.nn.Linear):
                    mask = torch.zeros_like(mod.weight, dtype=torch.bool)
                    for key in held:
                        if key[0] == i and rel == "mlp.down_proj":
                            mask[key[1], key[2]] = True
                    mod.weight.copy_(ref_rtn(mod.weight, bits, "block" if block else "tensor", block, clip_z, mask))
    return session_of(model, s.tokenizer, "tiny:llama", "hand-quantized")


def test_every_quant_sweep_row_is_a_direct_quantize_and_measure(s):
    """Each figure of each block size (not only per tensor) equals the perplexity of the model
    quantized here, without swtui's quantizer: blocks that divide the tensor, one that leaves a
    shorter last block, and per tensor."""
    from swtui.core.evidence import metrics

    text = "A short text to score, quantized in blocks of every size the sweep was asked for."
    blocks = [None, 64, 1000]
    rows = quant_sweep(s, 3, blocks, 3.0, text)
    assert [r.block for r in rows] == [None, 64, 1000]
    for row, block in zip(rows, blocks):
        for name, clip, keep in (("naive", None, False), ("keep_sw", None, True), ("clip", 3.0, False),
                                 ("sw_aware", 3.0, True)):
            hand = _hand_quantized(s, 3, block, clip, [SW] if keep else [])
            want = metrics.perplexity(hand, text, variants=("current",))["current"]
            assert getattr(row, name) == pytest.approx(want, rel=1e-6), (row.label, name)
    # smaller blocks quantize more finely: the naive figure moves towards the baseline
    assert rows[1].naive != rows[0].naive and rows[2].naive != rows[0].naive
