"""Super experts: the few experts of a mixture of experts that write its massive activations.

The rule is the published one ("Super Experts", Su et al. 2025, on Qwen3-30B-A3B, DeepSeek and
Mixtral): over one probe, take each routed expert's largest |down_proj output|; an expert is
*super* when its value is above the 99.5th percentile of all experts' values (every layer, every
expert that a token was routed to; linear interpolation between order statistics) **and** above
0.1× the largest of them. It is reported with its numbers (its max |out|, the percentile, the
overall max, its routed tokens), and judged like a weight, with an interval and a control:

- the expert pruned (its whole down projection zeroed through the ledger: restorable, exact),
  beside a *control expert*: one drawn (seeded) among the other experts of the same layer that a
  token was routed to and that are not super experts, pruned the same way;
- all super experts pruned together, beside their controls pruned together.

Verdict "super expert": pruning it hurts (the interval's lower bound reaches the impact threshold)
and its control has no effect; "harmless" when its interval stays below; otherwise "inconclusive".
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from swtui.core.evidence import HURTS, NO_EFFECT, Ratio, paired_ratio, perplexity_of

PERCENTILE = 99.5
TOP_SHARE = 0.1
CONTROL_SEED = 0
RULE = (f"an expert's max |down_proj output| > the {PERCENTILE:g}th percentile of all routed experts' "
        f"and > {TOP_SHARE:g}× the largest (Super Experts, Su et al. 2025)")

SUPER_EXPERT = "super expert"


@dataclass
class SuperExpert:
    layer: int
    expert: int
    out_max: float  # its largest |down_proj output| on the probe
    out_channel: int
    out_token: int
    routed_tokens: int  # probe tokens routed to it
    percentile: float  # the 99.5th percentile of all routed experts' max |out|
    overall_max: float
    control_expert: int | None = None
    ratio: Ratio | None = None  # ppl with the expert pruned / base, 95% interval
    control: Ratio | None = None  # the same with the control expert pruned
    verdict: str | None = None

    def to_json(self) -> dict:
        from swtui.core.evidence import fields

        d = asdict(self)
        for key in ("ratio", "control"):
            d.pop(key)
        d.update(fields("ppl_ratio", self.ratio))
        d.update(fields("control_ratio", self.control))
        return d


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile with linear interpolation between order statistics (numpy's default)."""
    v = sorted(values)
    if not v:
        return 0.0
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def find_super_experts(probe) -> list[SuperExpert]:
    """The published rule over one probe's routed experts (`LayerStats.experts`)."""
    rows = [(s.layer, r) for s in probe.layers for r in (s.experts or [])]
    if not rows:
        return []
    values = [r[2] for _, r in rows]
    p, top = percentile(values, PERCENTILE), max(values)
    found = [SuperExpert(layer, r[0], r[2], r[3], r[4], r[1], p, top)
             for layer, r in rows if r[2] > p and r[2] > TOP_SHARE * top]
    return sorted(found, key=lambda x: -x.out_max)


def control_expert(probe, se: SuperExpert, exclude) -> int | None:
    """An expert of the same layer, routed to on the probe, not a super expert (seeded draw)."""
    routed = [r[0] for r in (probe.layers[se.layer].experts or [])]
    pool = sorted(e for e in routed if (se.layer, e) not in exclude)
    return random.Random(f"{CONTROL_SEED}/expert/{se.layer}/{se.expert}").choice(pool) if pool else None


def _losses(session, extra, text, max_tokens):
    """Per-token losses of the current state with the experts `extra` pruned on top (restored after)."""
    from swtui.core.metrics import token_losses

    ledger = session.ledger
    before = ledger.pruned_experts
    ledger.set_pruned_experts(before | frozenset(extra))
    try:
        return token_losses(session, text, variants=("current",), max_tokens=max_tokens)["current"]
    finally:
        ledger.set_pruned_experts(before)


def judge_super_experts(session, probe, threshold: float | None, text=None, max_tokens=None, cancel=None) -> dict:
    """Find the super experts on `probe` and, with a threshold, judge each against its control.
    Returns the JSON form: rule, percentile, overall max, experts, and all pruned together."""
    from swtui.core.errors import Cancelled

    found = find_super_experts(probe)
    supers = {(s.layer, s.expert) for s in found}
    for s in found:
        s.control_expert = control_expert(probe, s, supers)
    out = {"rule": RULE, "percentile": found[0].percentile if found else None,
           "overall_max": found[0].overall_max if found else None, "experts": found, "together": None}
    if threshold is None or not found:
        return out
    base = _losses(session, (), text, max_tokens)
    for s in found:
        if cancel is not None and cancel.is_set():
            raise Cancelled("detection cancelled")
        s.ratio = paired_ratio(base, _losses(session, [(s.layer, s.expert)], text, max_tokens))
        if s.control_expert is not None:
            s.control = paired_ratio(base, _losses(session, [(s.layer, s.control_expert)], text, max_tokens))
        own = s.ratio.effect(threshold)
        ctl = s.control.effect(threshold) if s.control is not None else None
        s.verdict = SUPER_EXPERT if own == HURTS and ctl == NO_EFFECT else \
            "harmless" if own == NO_EFFECT else "inconclusive"
    if len(found) > 1:
        together = paired_ratio(base, _losses(session, supers, text, max_tokens))
        controls = [(s.layer, s.control_expert) for s in found if s.control_expert is not None]
        ctl = paired_ratio(base, _losses(session, controls, text, max_tokens)) if controls else None
        out["together"] = {"experts": sorted(supers), "ratio": together, "control": ctl}
    out["ppl_base"] = perplexity_of(base)
    return out


def super_experts_json(result: dict) -> dict:
    from swtui.core.evidence import fields

    together = result.get("together")
    return {"rule": result["rule"], "percentile": result["percentile"], "overall_max": result["overall_max"],
            "experts": [s.to_json() for s in result["experts"]],
            "together": None if together is None else {
                "experts": [list(k) for k in together["experts"]], **fields("ppl_ratio", together["ratio"]),
                **fields("control_ratio", together["control"])}}
