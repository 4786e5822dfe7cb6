"""Checks that need a CUDA device: skipped elsewhere (CI never has one). Run by bench/gpu_check.sh.

The demo model in the default CUDA dtype (bfloat16 where supported): edits and quantization
restore bit-exactly, pristine copies stay on the CPU, the two-pass baseline equals a solo run of
the untouched model, bitsandbytes runs with the super weight held out, and offload to the CPU
edits the real weights.
"""

import pytest
import torch

from swtui.core.evidence import generation, metrics
from swtui.core.model.loading import LoadOptions, load_model
from swtui.core.quant.session import apply_quant_config
from swtui.core.edits.session import Session

pytestmark = [pytest.mark.demo,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
SW = (11, 507, 1229)


@pytest.fixture(scope="module")
def cuda_demo():
    s = Session(load_model(None, LoadOptions(device="cuda")))
    s.name_super_weight(*SW)
    yield s
    s.reset()


def test_default_dtype_and_exact_restore(cuda_demo):
    s = cuda_demo
    assert s.device.type == "cuda" and s.loaded.dtype in ("bfloat16", "float16")
    h0 = s.current_hash()
    s.ledger.prune(*SW)
    assert s.ledger.current_value(*SW) == 0.0
    apply_quant_config(s, {"method": "rtn", "bits": 4, "group": "block", "block": 4096, "keep_super_weights": True})
    assert s.ledger._saved and all(t.device.type == "cpu" for t in s.ledger._saved.values())
    s.ledger.restore(*SW)
    s.reset()
    assert s.current_hash() == h0


def test_baseline_equals_a_solo_untouched_run(cuda_demo):
    s = cuda_demo
    text = metrics.eval_text()[:2000]
    solo = metrics.perplexity(s, text, variants=("current",))["current"]
    gen = generation.generate(s, "The capital of France is", 12, variants=("current",))["current"]
    for factor in (0.0, 10.0, 1000.0):
        s.ledger.scale(*SW, factor)
        assert s.ab_mode == "two passes"  # GEMM kernels are chosen by shape on the GPU
        ppl = metrics.perplexity(s, text)
        assert ppl["base"] == solo
        assert generation.generate(s, "The capital of France is", 12)["base"] == gen
    s.reset()
    s.ledger.prune(*SW)
    assert metrics.perplexity(s, text, variants=("current",))["current"] > 2 * solo


def test_batched_rows_on_the_gpu_report(cuda_demo, capsys):
    """Not a requirement: how far a forced batched baseline sits from the solo run on this GPU."""
    s = cuda_demo
    text = metrics.eval_text()[:2000]
    solo = metrics.perplexity(s, text, variants=("current",))["current"]
    s.ledger.scale(*SW, 100.0)
    s.batch_on_accelerator = True
    try:
        batched = metrics.perplexity(s, text)["base"]
    finally:
        s.batch_on_accelerator = False
        s.reset()
    with capsys.disabled():
        print(f"\n[gpu] batched baseline ppl {batched!r} vs solo {solo!r}: rel {abs(batched - solo) / solo:.2e}")


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4"])
def test_bitsandbytes_keep_sw_on_cuda(cuda_demo, method):
    pytest.importorskip("bitsandbytes")
    s = cuda_demo
    h0 = s.current_hash()
    base = metrics.perplexity(s, variants=("current",))["current"]
    apply_quant_config(s, {"method": method, "keep_super_weights": True})
    assert s.ledger.is_packed(SW[0])
    assert s.ledger.current_value(*SW) == pytest.approx(s.ledger.pristine_value(*SW), rel=1e-2)
    q = metrics.perplexity(s, variants=("current",))["current"]
    s.ledger.prune(*SW)  # re-packs layer 11 from the pruned pristine tensor
    pruned = metrics.perplexity(s, variants=("current",))["current"]
    s.reset()
    assert s.current_hash() == h0
    assert q < 2 * base < pruned


def test_cpu_offload_edits_the_real_weights(tmp_path):
    size = 135e6 * 2
    opts = LoadOptions(device="cuda", device_map="auto", max_memory={0: int(size * 0.4), "cpu": "20GiB"},
                       offload_folder=str(tmp_path))
    s = Session(load_model(None, opts))
    offloaded = [i for i, site in enumerate(s.adapter.sites) if site.down.weight.device.type == "meta"]
    assert offloaded, "nothing was offloaded"
    layer = offloaded[0]
    h0 = s.current_hash()
    before = metrics.perplexity(s, metrics.eval_text()[:1500], variants=("current",))["current"]
    s.ledger.prune(layer, 0, 0)
    s.ledger.scale(layer, 1, 1, 1000.0)
    after = metrics.perplexity(s, metrics.eval_text()[:1500], variants=("current",))["current"]
    assert after != before
    s.reset()
    assert s.current_hash() == h0
