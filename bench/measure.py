"""Single measurements, each run in its own process by bench/run.py (clean peaks, cold caches).

Usage: python bench/measure.py WHAT  -> prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

T_START = time.time()
PROMPT = "Apple Inc. is a worldwide tech company."


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


DEVICE = os.environ.get("SWTUI_BENCH_DEVICE", "auto")  # bench/run.py --device


def load_options():
    from swtui.core.model.loading import LoadOptions

    return LoadOptions(device=DEVICE)


def load():
    from swtui.core.model.loading import load_model
    from swtui.core.edits.session import Session

    return Session(load_model(None, load_options()))


def on_cuda(session) -> bool:
    return session.device.type == "cuda"


def sync() -> None:
    """A timing boundary: wait for queued GPU work (no-op on the CPU)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def weight_mb(session) -> float:
    seen, total = set(), 0
    for p in session.model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total / 2**20


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def m_probe(repeat=15):
    import torch

    from swtui.core.detection.probe import probe_down_proj

    s = load()
    text = open(os.path.join(os.path.dirname(__file__), "..", "swtui", "core", "data", "eval.txt")).read()
    ids = s.encode(text)[:, :256]  # on the model's device
    plain, probed = [], []
    with torch.no_grad():
        for _ in range(3):
            s.model(input_ids=ids, use_cache=False)
        for _ in range(repeat):  # interleaved, so drift hits both alike
            sync()
            t = time.perf_counter()
            s.model(input_ids=ids, use_cache=False)
            sync()
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            probe_down_proj(s.model, s.adapter, ids)
            sync()
            probed.append(time.perf_counter() - t)
    a, b = statistics.median(plain), statistics.median(probed)
    return {"tokens": ids.shape[-1], "plain_s": a, "probe_s": b, "ratio": b / a}


def m_ab(repeat=5):
    from swtui.core.evidence import generation

    s = load()
    s.ledger.prune(11, 507, 1229)
    prompt, n = "The capital of France is", 32
    generation.generate(s, prompt, 4)
    one = median_time(lambda: generation.generate(s, prompt, n, variants=("current",)), repeat)
    both = median_time(lambda: generation.generate(s, prompt, n), repeat)
    s.ledger.set_zeros({"model.layers.0.mlp.up_proj.weight": __import__("torch").tensor([0])})
    two_pass = median_time(lambda: generation.generate(s, prompt, n), repeat)  # a tensor edit forces two passes
    return {"new_tokens": n, "one_s": one, "ab_batched_s": both, "ab_two_pass_s": two_pass,
            "ratio": both / one, "two_pass_ratio": two_pass / one}


def m_open():
    import torch  # noqa: F401 - imports are timed separately
    import transformers  # noqa: F401

    t_imported = time.time()
    from swtui.core.model.loading import load_model

    t = time.perf_counter()
    load_model(None, load_options())
    first = time.perf_counter() - t
    t = time.perf_counter()
    load_model(None, load_options())  # the same process again: transformers' lazy model-code imports are done
    return {"import_s": t_imported - T_START, "load_s": first, "load_again_s": time.perf_counter() - t}


def m_quant(repeat=3):
    from swtui.core.quant.session import apply_quant_config

    s = load()
    linears = s.adapter.decoder_linears()
    copy = median_time(lambda: [m.weight.detach().clone() for _, m in linears], repeat)
    cfg = {"method": "rtn", "bits": 4, "group": "block", "block": 4096}

    def quant():
        apply_quant_config(s, cfg)
        apply_quant_config(s, None)

    rtn_s = median_time(lambda: apply_quant_config(s, cfg), 1)
    apply_quant_config(s, None)
    rtn_s = median_time(quant, repeat)
    n = sum(m.weight.numel() for _, m in linears)
    return {"params": n, "copy_s": copy, "rtn_s": rtn_s, "ratio": rtn_s / copy}


def m_memory(mode):
    import torch  # noqa: F401
    import transformers  # noqa: F401

    base = rss_mb()
    s = load()
    w = weight_mb(s)
    out = {"runtime_mb": base, "weights_mb": w}
    if mode == "idle":
        out["rss_mb"] = rss_mb()
    elif mode == "quant":
        from swtui.core.evidence import generation, metrics
        from swtui.core.quant.session import apply_quant_config

        apply_quant_config(s, {"method": "rtn", "bits": 4, "group": "block", "block": 4096})
        metrics.perplexity(s)
        generation.generate(s, "The capital of France is", 16)
    elif mode == "ab":
        from swtui.core.evidence import generation, metrics

        s.ledger.prune(11, 507, 1229)
        generation.generate(s, "The capital of France is", 32)
        metrics.perplexity(s)
    elif mode == "compare":  # the inspector's C: baseline + three variants, one after the other
        from swtui.core.quant.config import QuantConfig, Variant
        from swtui.core.evidence.variants import compare

        s.name_super_weight(11, 507, 1229)
        compare(s, [Variant("naive", QuantConfig(bits=4)),
                    Variant("sw-aware", QuantConfig(bits=4, clip_z=9.0, keep_super_weights=True)),
                    Variant("block 4096", QuantConfig(bits=4, group="block", block=4096))],
                "The capital of France is", 24)
    out["peak_mb"] = peak_mb()
    out["multiple"] = (out["peak_mb"] - base) / w
    if on_cuda(s):  # the weights live on the device: its peak is the figure that matters
        import torch

        sync()
        out["device_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["device_multiple"] = out["device_peak_mb"] / w
    return out


def m_startup():
    """Where the time to a usable session goes, stage by stage, in this fresh process."""
    t0 = float(os.environ.get("SWTUI_T0", T_START))
    marks = [("python start + bench imports", t0), ("importing torch", T_START)]

    def mark(stage: str) -> None:
        sync() if "torch" in sys.modules else None
        marks.append((stage, time.time()))

    import torch

    mark("device init")
    if DEVICE != "cpu" and torch.cuda.is_available():
        torch.zeros(1, device="cuda")
    mark("importing swtui")
    from swtui.core.evidence import generation, metrics
    from swtui.core.detection.detect import DetectOptions, detect
    from swtui.core.model.loading import load_model
    from swtui.core.edits.session import Session

    mark("hashing the GGUF (memoised)")
    loaded = load_model(None, load_options(), lambda stage, frac: mark(stage) if frac is None else None)
    s = Session(loaded)
    mark("detection: probe rounds")
    opts = DetectOptions()
    detection = detect(s, opts, lambda stage, frac: mark("detection: impact checks")
                       if stage.startswith("measuring impact") and frac is None else None)
    mark("metrics: generation (24 tokens, A/B)")
    generation.generate(s, "The capital of France is", 24)
    mark("metrics: stopword mass")
    metrics.stopword_mass(s)
    mark("metrics: perplexity")
    metrics.perplexity(s)
    mark("end")
    stages = [{"stage": a, "s": round(tb - ta, 3)} for (a, ta), (_, tb) in zip(marks, marks[1:])]
    return {"device": str(s.device), "dtype": loaded.dtype, "stages": stages, "total_s": marks[-1][1] - t0,
            "candidates": len(detection.candidates)}


def m_detect():
    """Detection's cost on the demo model, as the app runs it (the evaluation plan: sequential looks,
    shared prefixes, arms as rows of batched forwards), and the same detection with every arm on the
    whole budget and no prefix (each arm on the whole corpus, as before the plan): seconds, forwards,
    tokens per look and per arm (`plan.cost`), and when the first claim was decided."""
    import swtui.core.evidence.arms as arms
    from swtui.core.detection.detect import DetectOptions, detect
    from swtui.core.edits.session import Session

    s = Session(load())
    out = {"batchable": s.batchable, "batch_rows": arms.ROWS}
    plain_init = arms.PlanRunner.__init__

    def without_prefix(self, *args, **kw):
        plain_init(self, *args, **{**kw, "prefix": False})

    for label, opts, init in (("app", DetectOptions(), plain_init),
                              ("full_budget_no_prefix", DetectOptions(sequential=False), without_prefix)):
        arms.PlanRunner.__init__ = init
        marks = {}
        sync()
        t0 = time.perf_counter()
        d = detect(s, opts, lambda stage, frac: marks.setdefault(stage.split(" (")[0], time.perf_counter()))
        sync()
        total = time.perf_counter() - t0
        impact_at = marks.get("measuring impact", t0 + total)
        cost = d.impact.cost or {}
        out[label] = {"total_s": total, "probe_rounds_s": impact_at - t0, "impact_s": t0 + total - impact_at,
                      "rounds": len(d.rounds), "candidates": len(d.candidates), "cost": cost,
                      "claims": len(d.impact.claims), "verdicts": {f"{c.key}": c.verdict for c in d.candidates}}
    arms.PlanRunner.__init__ = plain_init
    return out


if __name__ == "__main__":
    what = sys.argv[1]
    fn = {"probe": m_probe, "ab": m_ab, "open": m_open, "quant": m_quant,
          "memory-idle": lambda: m_memory("idle"), "memory-quant": lambda: m_memory("quant"),
          "memory-ab": lambda: m_memory("ab"), "memory-compare": lambda: m_memory("compare"),
          "startup": m_startup, "detect": m_detect}[what]
    print(json.dumps(fn()))
