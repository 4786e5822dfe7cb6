"""Super experts: the few experts of a mixture of experts that write its massive activations.

The rule is the published code's ("Super Experts", Su et al. 2025, github ZunhaiSu/
Super-Experts-Profilling, `eval_utils.py`: `_super_experts_analysis`, `_identify_super_experts`):
profile every expert's largest |down_proj output| on calibration text (`expert_profile`: the routed
experts and the shared expert of each MoE layer; dense layers are not experts), keep the rows of
the first `round(0.75 × layers)` decoder layers (Python's round, half to even, over all decoder
layers, dense ones included), and call an expert *super* when its value is above the 99.5th
percentile of those rows (numpy's linear interpolation between order statistics) **and** above
⌊max / 10⌋ (the code's `np.max(values) // 10`; the paper says 0.1× the max). With N rows at most
⌈N/200⌉ of them can clear the 99.5th percentile (one when N ≤ 201). An expert found is reported
with its numbers (its max |out|, the percentile, the overall max, its routed tokens, the
calibration) and judged like a weight, with an interval and controls:

- the expert pruned (its whole down projection zeroed through the ledger: restorable, exact),
  beside *control experts*: the routed experts of the same layer nearest to it in max |down_proj
  output| that are not super experts, pruned the same way (`controls.expert_controls`);
- all super experts pruned together, beside control sets made the same way.

Verdict "super expert": its claim clears the threshold and every control (`plan.Outcome.CLEARS`);
"below threshold" when its interval stays below; otherwise "inconclusive".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from swtui.core.evidence.stats import Ratio

PERCENTILE = 99.5
#: the share of the decoder layers (the first ones) whose experts the rule ranks (`--include_layers`)
INCLUDE_LAYERS = 0.75
#: the value must exceed ⌊max / TOP_DIVISOR⌋ (the reference's `np.max(values) // times`, times=10)
TOP_DIVISOR = 10
RULE = (f"an expert's max |down_proj output| on calibration text, among the routed and shared experts of "
        f"the first round({INCLUDE_LAYERS:g} × layers) layers, > the {PERCENTILE:g}th percentile of them and "
        f"> ⌊max/{TOP_DIVISOR}⌋ (Super Experts, Su et al. 2025, its published code)")

SUPER_EXPERT = "super expert"


@dataclass
class SuperExpert:
    layer: int
    expert: int  # `moe.SHARED` (-1): the layer's shared expert
    out_max: float  # its largest |down_proj output| on the calibration
    out_channel: int
    out_token: int  # within its calibration window
    routed_tokens: int  # calibration tokens routed to it
    percentile: float  # the 99.5th percentile of the ranked experts' max |out|
    overall_max: float
    control_expert: int | None = None
    ratio: Ratio | None = None  # ppl with the expert pruned / base, 95% interval
    control: Ratio | None = None  # the worst of its controls pruned
    verdict: str | None = None
    evidence: dict | None = None  # its claim as measured (plan.ClaimResult.to_json)

    def to_json(self) -> dict:
        from swtui.core.evidence.stats import fields

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


def included_layers(n_layers: int, include: float = INCLUDE_LAYERS) -> int:
    """How many of the first layers the rule ranks: the reference's `round(total_layers × 0.75)`."""
    return round(n_layers * include)


@dataclass(frozen=True)
class RuleFigures:
    """What the rule compared against: the ranked rows and their thresholds."""

    layers: int  # layers 0 .. layers-1 were ranked
    rows: int
    percentile: float | None
    overall_max: float | None

    @property
    def floor(self) -> float | None:
        """⌊max / 10⌋, the reference's integer division of a float."""
        return None if self.overall_max is None else float(math.floor(self.overall_max / TOP_DIVISOR))


def ranked_rows(profile, include: float = INCLUDE_LAYERS) -> tuple[list, RuleFigures]:
    """[(layer, row)] the rule ranks (the first `include` of the layers) and its figures. `profile`
    is an `expert_profile.ExpertProfile` (or anything with `layers[i].layer` and `.experts` rows
    [expert, routed tokens, max |out|, out channel, out token, ...])."""
    cut = included_layers(len(profile.layers), include)
    rows = [(s.layer, r) for s in profile.layers if s.layer < cut for r in (s.experts or [])]
    values = [r[2] for _, r in rows]
    figures = RuleFigures(cut, len(rows), percentile(values, PERCENTILE) if values else None,
                          max(values) if values else None)
    return rows, figures


def find_super_experts(profile, include: float = INCLUDE_LAYERS) -> list[SuperExpert]:
    """The published rule over a calibration profile (`expert_profile.profile_experts`)."""
    rows, fig = ranked_rows(profile, include)
    if not rows:
        return []
    found = [SuperExpert(layer, r[0], r[2], r[3], r[4], r[1], fig.percentile, fig.overall_max)
             for layer, r in rows if r[2] > fig.percentile and r[2] > fig.floor]
    return sorted(found, key=lambda x: -x.out_max)


def judge_super_experts(session, profile, threshold: float | None, runner=None, cancel=None) -> dict:
    """Find the super experts on a calibration `profile` (`expert_profile.profile_experts`) and, with
    a threshold and a plan runner (`arms.PlanRunner`), judge each as a claim of the evaluation plan:
    the expert pruned beside the `controls.K` routed experts of its layer nearest in max |down_proj
    output| on the calibration; with several, all pruned together beside control sets made the same
    way. Returns the JSON form: rule, its figures, the calibration, experts, together."""
    from swtui.core.detection.controls import expert_controls
    from swtui.core.evidence.stats import perplexity_of
    from swtui.core.model.moe import expert_label
    from swtui.core.evidence.plan import Arm, Claim, ClaimKind, Edit, Outcome

    found = find_super_experts(profile)
    _, fig = ranked_rows(profile)
    supers = {(s.layer, s.expert) for s in found}
    controls = {(s.layer, s.expert): expert_controls(profile, s.layer, s.expert, supers) for s in found}
    for s in found:
        s.control_expert = controls[(s.layer, s.expert)][0].subject[1] if controls[(s.layer, s.expert)] else None
    out = {"rule": RULE, "percentile": fig.percentile, "overall_max": fig.overall_max, "floor": fig.floor,
           "layers_ranked": fig.layers, "rows_ranked": fig.rows, "calibration": profile.to_json(),
           "experts": found, "together": None}
    if threshold is None or not found or runner is None:
        return out
    matched = "max |down_proj output| on the calibration text (routed experts of the same layer)"
    claims = []
    for s in found:
        ctl = controls[(s.layer, s.expert)]
        claims.append(Claim(f"e:{s.layer}.{s.expert}", ClaimKind.EXPERT,
                            Arm(f"prune {expert_label(s.expert)} of layer {s.layer}",
                                Edit(experts=((s.layer, s.expert),)),
                                f"{expert_label(s.expert)} of layer {s.layer} pruned", s.out_max),
                            tuple(Arm(f"prune expert {s.layer}·e{c.subject[1]} (control of e{s.expert})",
                                      Edit(experts=(c.subject,)), f"expert {c.subject[1]} of layer {s.layer} pruned",
                                      c.magnitude) for c in ctl),
                            matched_on=matched, priority=s.out_max, subject=(s.layer, s.expert)))
    if len(found) > 1:
        n = min(len(controls[k]) for k in supers)
        sets = [tuple(controls[(s.layer, s.expert)][j].subject for s in found) for j in range(n)]
        claims.append(Claim("e:together", ClaimKind.EXPERTS,
                            Arm("prune every super expert", Edit(experts=tuple(sorted(supers))),
                                f"{len(supers)} super experts pruned together", sum(s.out_max for s in found)),
                            tuple(Arm(f"prune control set {j + 1}", Edit(experts=keys), f"{len(keys)} control experts",
                                      None) for j, keys in enumerate(sets)),
                            matched_on=matched, priority=-1.0))
    results = {r.claim.name: r for r in runner.run(claims, None, cancel)}
    for s in found:
        r = results[f"e:{s.layer}.{s.expert}"]
        worst = r.worst_control
        s.ratio = r.treatment.ratio
        s.control = worst.ratio if worst else None
        s.control_expert = worst.arm.edit.experts[0][1] if worst else s.control_expert
        s.verdict = SUPER_EXPERT if r.outcome == Outcome.CLEARS else \
            "below threshold" if r.outcome == Outcome.BELOW else "inconclusive"
        s.evidence = r.to_json()
    if "e:together" in results:
        r = results["e:together"]
        worst = r.worst_control
        out["together"] = {"experts": sorted(supers), "ratio": r.treatment.ratio,
                           "control": worst.ratio if worst else None, "evidence": r.to_json()}
    out["ppl_base"] = perplexity_of(torch_cat(runner.base))
    return out


def torch_cat(parts):
    import torch

    return torch.cat([p for p in parts if p is not None])


def super_experts_json(result: dict) -> dict:
    from swtui.core.evidence.stats import fields

    together = result.get("together")
    return {"rule": result["rule"], "percentile": result["percentile"], "overall_max": result["overall_max"],
            **{k: result.get(k) for k in ("floor", "layers_ranked", "rows_ranked", "calibration")},
            "experts": [s.to_json() for s in result["experts"]],
            "together": None if together is None else {
                "experts": [list(k) for k in together["experts"]], **fields("ppl_ratio", together["ratio"]),
                **fields("control_ratio", together["control"])}}
