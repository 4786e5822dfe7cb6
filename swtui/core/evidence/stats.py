"""How sure a perplexity ratio is: paired per-token losses, a bootstrap, a verdict from the interval.

Two intervals live here. `window_ratio` is the one verdicts rest on (the evaluation plan,
`swtui.core.evidence.plan`): a *cluster* bootstrap over whole evaluation windows, at a level the plan
chooses so that its looks and its decisions together keep a stated family-wise error.
`paired_ratio` (a block bootstrap over consecutive tokens) is kept for the sweeps, which
compare arms on one contiguous text.

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
        """HURTS (lo ≥ threshold), NO_EFFECT (hi < threshold) or INCONCLUSIVE (also a ratio that is
        not finite). Verdicts come from window intervals, which are [0, ∞] under MIN_WINDOWS windows;
        a block-bootstrap ratio (sweeps, comparisons) on fewer than MIN_TOKENS tokens is descriptive."""
        if self.tokens <= 0 or not all(math.isfinite(v) for v in (self.value, self.lo, self.hi)):
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


@dataclass(frozen=True)
class Difference:
    """current − base of a per-context quantity (the stopword mass), with its 95% interval from a
    cluster bootstrap over the windows the contexts sit in; `contexts` positions in all."""

    value: float
    lo: float
    hi: float
    contexts: int

    @classmethod
    def of_windows(cls, base, current, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> "Difference":
        """From per-window tensors of the quantity at each position (the same positions in both)."""
        import torch

        sums = torch.tensor([float((c - b).sum()) for b, c in zip(base, current)], dtype=torch.float64)
        counts = torch.tensor([b.numel() for b in base], dtype=torch.float64)
        value = float(sums.sum() / counts.sum())
        n = len(base)
        if n < MIN_WINDOWS:
            return cls(value, -math.inf, math.inf, int(counts.sum()))
        pick = torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(seed))
        se = float((sums[pick].sum(dim=1) / counts[pick].sum(dim=1)).std())
        half = t_quantile((1 + level) / 2, n - 1) * se
        return cls(value, value - half, value + half, int(counts.sum()))

    def text(self) -> str:
        return f"{self.value:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]"


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


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (bisection on its CDF)."""
    if not 0 < p < 1 or df < 1:
        raise ValueError(f"t quantile needs 0 < p < 1 and df ≥ 1 (got p={p}, df={df})")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def t_cdf(t: float, df: int) -> float:
    """P(T ≤ t) for Student's t: 1 − ½·I_{df/(df+t²)}(df/2, ½) for t ≥ 0."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1 - _betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 + num * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1 - c * d) < 1e-15:
            break
    return front * (f - 1)


#: the fewest windows an interval is drawn on: fewer, and the effect is always undecided
MIN_WINDOWS = 4
WINDOW_METHOD = ("cluster bootstrap over whole evaluation windows (paired per-token losses; windows resampled "
                 f"with replacement, {RESAMPLES} resamples, seed {SEED}); interval = point ± t(windows − 1) × the "
                 "bootstrap standard error, on the log scale, at the level the plan's error spending sets")


def window_ratio(base_windows, arm_windows, level: float = LEVEL, resamples: int = RESAMPLES,
                 seed: int = SEED) -> Ratio:
    """ppl(arm)/ppl(base) over paired windows (lists of per-token loss tensors, window by window),
    with a cluster-bootstrap interval at `level`.

    Tokens within a window are correlated (one context); windows are the units resampled. The
    point is exp(Σ_w Σ_t d / Σ_w n_w); the bootstrap gives the standard error of the log ratio, and
    the interval is point ± t_{W−1}((1+level)/2)·SE, a Student-t interval that stays honest with few
    windows and at the extreme levels that error spending over looks and decisions asks for (a
    percentile interval would need far more resamples there). Under MIN_WINDOWS windows the interval
    is infinite (nothing can be decided)."""
    import torch

    if len(base_windows) != len(arm_windows) or not base_windows:
        raise ValueError(f"unpaired windows: {len(base_windows)} vs {len(arm_windows)}")
    sums, counts = [], []
    for b, a in zip(base_windows, arm_windows):
        b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
        a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
        if b.shape != a.shape:
            raise ValueError(f"unpaired losses in a window: {tuple(b.shape)} vs {tuple(a.shape)} tokens")
        sums.append(float((a - b).sum()))
        counts.append(b.numel())
    s = torch.tensor(sums, dtype=torch.float64)
    n = torch.tensor(counts, dtype=torch.float64)
    tokens = int(n.sum())
    mean = float(s.sum() / n.sum())
    if not math.isfinite(mean):
        value = math.exp(mean) if mean == mean else float("nan")
        return Ratio(value, value, value, tokens)
    windows = len(sums)
    if windows < MIN_WINDOWS:
        return Ratio(math.exp(mean), 0.0, math.inf, tokens)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, windows, (resamples, windows), generator=gen)
    boot = s[pick].sum(dim=1) / n[pick].sum(dim=1)
    se = float(boot.std())
    half = t_quantile((1 + level) / 2, windows - 1) * se
    return Ratio(math.exp(mean), _exp(mean - half), _exp(mean + half), tokens)


def _exp(v: float) -> float:
    return math.exp(v) if v < 700 else math.inf


def lag_correlation(values, lag: int = 1) -> float | None:
    """The lag-`lag` autocorrelation of a sequence (None when too short or constant)."""
    import torch

    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if v.numel() <= lag + 2:
        return None
    v = v - v.mean()
    denom = float((v * v).sum())
    return float((v[lag:] * v[:-lag]).sum() / denom) if denom > 0 else None


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
