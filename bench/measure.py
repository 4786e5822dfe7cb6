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


def load():
    from swtui.core.loading import load_model
    from swtui.core.session import Session

    return Session(load_model(None))


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
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def m_probe(repeat=15):
    import torch

    from swtui.core.probe import probe_down_proj

    s = load()
    text = open(os.path.join(os.path.dirname(__file__), "..", "swtui", "core", "data", "eval.txt")).read()
    ids = s.tokenizer(text, return_tensors="pt").input_ids[:, :256]
    plain, probed = [], []
    with torch.no_grad():
        for _ in range(3):
            s.model(input_ids=ids, use_cache=False)
        for _ in range(repeat):  # interleaved, so drift hits both alike
            t = time.perf_counter()
            s.model(input_ids=ids, use_cache=False)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            probe_down_proj(s.model, s.adapter, ids)
            probed.append(time.perf_counter() - t)
    a, b = statistics.median(plain), statistics.median(probed)
    return {"tokens": ids.shape[-1], "plain_s": a, "probe_s": b, "ratio": b / a}


def m_ab(repeat=5):
    from swtui.core import metrics

    s = load()
    s.ledger.prune(11, 507, 1229)
    prompt, n = "The capital of France is", 32
    metrics.generate(s, prompt, 4)
    one = median_time(lambda: metrics.generate(s, prompt, n, variants=("current",)), repeat)
    both = median_time(lambda: metrics.generate(s, prompt, n), repeat)
    s.ledger.set_zeros({"model.layers.0.mlp.up_proj.weight": __import__("torch").tensor([0])})
    two_pass = median_time(lambda: metrics.generate(s, prompt, n), repeat)  # a tensor edit forces two passes
    return {"new_tokens": n, "one_s": one, "ab_batched_s": both, "ab_two_pass_s": two_pass,
            "ratio": both / one, "two_pass_ratio": two_pass / one}


def m_open():
    import torch  # noqa: F401 - imports are timed separately
    import transformers  # noqa: F401

    t_imported = time.time()
    from swtui.core.loading import load_model

    t = time.perf_counter()
    load_model(None)
    first = time.perf_counter() - t
    t = time.perf_counter()
    load_model(None)  # the same process again: transformers' lazy model-code imports are done
    return {"import_s": t_imported - T_START, "load_s": first, "load_again_s": time.perf_counter() - t}


def m_first_chart():
    """Process start -> first probe result, through the inference thread as the TUI uses it."""
    import threading

    from swtui.core import events as ev
    from swtui.core.worker import InferenceWorker

    done = threading.Event()
    stamp = {}

    def emit(e):
        if isinstance(e, ev.ProbeDone) and "t" not in stamp:
            stamp["t"] = time.time()
            done.set()

    w = InferenceWorker(emit, None, detect_on_load=False)
    w.start()
    done.wait(600)
    w.stop(60)
    return {"first_probe_at": stamp["t"]}


def m_quant(repeat=3):
    from swtui.core.quant_session import apply_quant_config

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
        from swtui.core import metrics
        from swtui.core.quant_session import apply_quant_config

        apply_quant_config(s, {"method": "rtn", "bits": 4, "group": "block", "block": 4096})
        metrics.perplexity(s)
        metrics.generate(s, "The capital of France is", 16)
    elif mode == "ab":
        from swtui.core import metrics

        s.ledger.prune(11, 507, 1229)
        metrics.generate(s, "The capital of France is", 32)
        metrics.perplexity(s)
    out["peak_mb"] = peak_mb()
    out["multiple"] = (out["peak_mb"] - base) / w
    return out


if __name__ == "__main__":
    what = sys.argv[1]
    fn = {"probe": m_probe, "ab": m_ab, "open": m_open, "first_chart": m_first_chart, "quant": m_quant,
          "memory-idle": lambda: m_memory("idle"), "memory-quant": lambda: m_memory("quant"),
          "memory-ab": lambda: m_memory("ab")}[what]
    print(json.dumps(fn()))
