"""How sure a perplexity ratio is: paired per-token losses, a block bootstrap, a verdict from the interval.

Two arms (a baseline and an intervention) are measured on the *same* evaluation tokens, so their
per-token negative log-likelihoods pair up. The perplexity ratio is

    ratio = exp(mean(l_arm) − mean(l_base)) = ppl(arm) / ppl(base)

and its 95% interval comes from a paired *block* bootstrap: the token-wise differences
d_i = l_arm,i − l_base,i are cut into consecutive blocks of `BLOCK` tokens (neighbouring tokens
are correlated; blocks keep that), the blocks are resampled with replacement `RESAMPLES` times
with a fixed seed, and the 2.5th and 97.5th percentiles of exp(mean d*) are the bounds. The
method, block size, resamples and seed are reported beside every interval.

A verdict compares the interval, not the point, with the impact threshold: "hurts" when the lower
bound reaches it, "no effect" when the upper bound stays below it, otherwise "inconclusive".

Nothing here imports torch at module level (the TUI reads `Ratio`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: consecutive target tokens resampled together
BLOCK = 16
#: bootstrap resamples
RESAMPLES = 2000
#: the generator's seed: intervals are reproducible run to run
SEED = 0
#: the interval's coverage
LEVEL = 0.95
#: fewer blocks than this cannot carry an interval (every resample is nearly the same): such a
#: ratio is reported, and its effect is always INCONCLUSIVE
MIN_BLOCKS = 20
MIN_TOKENS = MIN_BLOCKS * BLOCK

METHOD = (f"paired block bootstrap over per-token losses: blocks of {BLOCK} tokens, {RESAMPLES} resamples, "
          f"seed {SEED}, {LEVEL:.0%} percentile interval; under {MIN_BLOCKS} blocks: inconclusive")

HURTS = "hurts"
NO_EFFECT = "no effect"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Ratio:
    """ppl(arm) / ppl(base) on `tokens` paired tokens, with its 95% interval [lo, hi]."""

    value: float
    lo: float
    hi: float
    tokens: int

    def effect(self, threshold: float) -> str:
        """HURTS (lo ≥ threshold), NO_EFFECT (hi < threshold) or INCONCLUSIVE (also on fewer than
        MIN_TOKENS tokens, or a ratio that is not finite)."""
        if self.tokens < MIN_TOKENS or not all(math.isfinite(v) for v in (self.value, self.lo, self.hi)):
            return INCONCLUSIVE
        if self.lo >= threshold:
            return HURTS
        if self.hi < threshold:
            return NO_EFFECT
        return INCONCLUSIVE

    def text(self) -> str:
        return f"×{fmt_ratio(self.value)} [{fmt_ratio(self.lo)}, {fmt_ratio(self.hi)}]"

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": [self.lo, self.hi], "tokens": self.tokens}


def fmt_ratio(v: float) -> str:
    """3 significant digits, or an exponent past 10⁴ (the CLI and TUI write ratios so)."""
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def paired_ratio(base, arm, block: int = BLOCK, resamples: int = RESAMPLES, seed: int = SEED) -> Ratio:
    """The ratio of two arms' perplexities from their per-token losses (1-D, same tokens), with
    the paired block-bootstrap interval."""
    import torch

    base = torch.as_tensor(base, dtype=torch.float64).reshape(-1)
    arm = torch.as_tensor(arm, dtype=torch.float64).reshape(-1)
    if base.shape != arm.shape:
        raise ValueError(f"unpaired losses: {tuple(base.shape)} vs {tuple(arm.shape)} tokens")
    n = base.numel()
    if n == 0:
        raise ValueError("no tokens to compare")
    diff = arm - base
    mean = float(diff.mean())
    if not math.isfinite(mean):  # an arm that overflowed: no interval can be drawn around it
        value = math.exp(mean) if mean == mean else float("nan")
        return Ratio(value, value, value, n)
    blocks = math.ceil(n / block)
    pad = blocks * block - n
    sums = torch.nn.functional.pad(diff, (0, pad)).reshape(blocks, block).sum(dim=1)
    counts = torch.full((blocks,), float(block), dtype=torch.float64)
    if pad:
        counts[-1] = block - pad
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, blocks, (resamples, blocks), generator=gen)
    means = sums[pick].sum(dim=1) / counts[pick].sum(dim=1)
    alpha = (1 - LEVEL) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return Ratio(math.exp(mean), math.exp(lo), math.exp(hi), n)


def perplexity_of(losses) -> float:
    """exp(mean per-token loss)."""
    import torch

    return math.exp(float(torch.as_tensor(losses, dtype=torch.float64).mean()))


def fields(name: str, ratio: "Ratio | None") -> dict:
    """{name: value, name_ci95: [lo, hi]} for JSON (both None when not measured)."""
    if ratio is None:
        return {name: None, f"{name}_ci95": None}
    finite = lambda v: v if math.isfinite(v) else None  # noqa: E731 - JSON has no Infinity
    return {name: finite(ratio.value), f"{name}_ci95": [finite(ratio.lo), finite(ratio.hi)]}
