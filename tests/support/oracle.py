"""An independent reference for the quantization oracles: swtui's RTN written again from its
description (docs/quantization.md), without swtui's code."""


def ref_groups(rows: int, cols: int, group: str, block):
    """The flat indices of each group of a [rows, cols] weight, stacked by length: [[G, n], ...]."""
    import torch

    idx = torch.arange(rows * cols).reshape(rows, cols)
    if group == "tensor":
        groups = [idx.reshape(-1)]
    elif group == "channel":
        groups = list(idx)
    elif group == "block":  # 1-D blocks of the flattened tensor; the last one takes the remainder
        groups = list(idx.reshape(-1).split(block))
    else:  # T×T tiles
        groups = [idx[r:r + block, c:c + block].reshape(-1) for r in range(0, rows, block)
                  for c in range(0, cols, block)]
    by_len = {}
    for g in groups:
        by_len.setdefault(len(g), []).append(g)
    return [torch.stack(gs) for gs in by_len.values()]


def ref_rtn(w, bits, group, block=None, clip_z=None, held=None):
    """docs/quantization.md: per group, clip to ±(z·std|W| + mean|W|) (statistics over the whole
    group, held-out weights included), held-out weights set to 0, asymmetric round to nearest with
    Δ = (max − min)/(2^N − 1) (a constant group comes back as is), held-out weights written back."""
    import torch

    x = w.detach().float().reshape(-1)
    held = torch.zeros_like(x, dtype=torch.bool) if held is None else held.reshape(-1)
    out = torch.empty_like(x)
    levels = 2 ** bits - 1
    for g in ref_groups(*w.shape, group, block):
        v = x[g]
        if clip_z is not None:
            a = v.abs()
            thr = clip_z * a.std(dim=1, keepdim=True, unbiased=False) + a.mean(dim=1, keepdim=True)
            v = torch.minimum(torch.maximum(v, -thr), thr)
        v = torch.where(held[g], torch.zeros_like(v), v)
        lo = v.min(dim=1, keepdim=True).values
        step_ = (v.max(dim=1, keepdim=True).values - lo) / levels
        step_ = torch.where(step_ > 0, step_, torch.ones_like(step_))
        out[g] = torch.round((v - lo) / step_) * step_ + lo
    return torch.where(held, x, out).reshape(w.shape).to(w.dtype)


def verdict_perplexity(session, windows: int) -> float:
    """The oracle's perplexity on the first `windows` windows of the verdicts' corpus (what an arm
    that stopped after those windows was measured on), by an ordinary forward per window."""
    import torch

    from swtui.core.evidence.corpus import build
    from swtui.core.detection.detect import EVAL_BUDGET
    from swtui.core.evidence.stats import perplexity_of
    from swtui.core.evidence.metrics import window_losses

    corpus = build(session.tokenizer, context_length=session.context_length).first(EVAL_BUDGET)
    losses = [window_losses(session, w.ids, 1)[0] for w in corpus.windows[:windows]]
    return perplexity_of(torch.cat(losses))
