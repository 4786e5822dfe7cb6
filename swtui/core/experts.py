"""Super experts: the few experts of a mixture of experts that write its massive activations.

The rule is the published one ("Super Experts", Su et al. 2025, on Qwen3-30B-A3B, DeepSeek and
Mixtral): over one probe, take each routed expert's largest |down_proj output|; an expert is
*super* when its value is above the 99.5th percentile of all experts' values (every layer, every
expert that a token was routed to; linear interpolation between order statistics) **and** above
0.1× the largest of them. It is reported with its numbers (its max |out|, the percentile, the
overall max, its routed tokens), and judged like a weight, with an interval and a control:

- the expert pruned (its whole down projection zeroed through the ledger: restorable, exact),
  beside *control experts*: the routed experts of the same layer nearest to it in max |down_proj
  output| that are not super experts, pruned the same way (`controls.expert_controls`);
- all super experts pruned together, beside control sets made the same way.

Verdict "super expert": its claim clears the threshold and every control (`plan.Outcome.CLEARS`);
"below threshold" when its interval stays below; otherwise "inconclusive".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from swtui.core.evidence import Ratio

PERCENTILE = 99.5
TOP_SHARE = 0.1
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
    control: Ratio | None = None  # the worst of its controls pruned
    verdict: str | None = None
    evidence: dict | None = None  # its claim as measured (plan.ClaimResult.to_json)

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


def judge_super_experts(session, probe, threshold: float | None, runner=None, cancel=None) -> dict:
    """Find the super experts on `probe` and, with a threshold and a plan runner (`arms.PlanRunner`),
    judge each as a claim of the evaluation plan: the expert pruned beside the `controls.K` routed
    experts of its layer nearest in max |down_proj output|; with several, all pruned together beside
    control sets made the same way. Returns the JSON form: rule, percentile, overall max, experts, together."""
    from swtui.core.controls import expert_controls
    from swtui.core.evidence import perplexity_of
    from swtui.core.plan import Arm, Claim, ClaimKind, Edit, Outcome

    found = find_super_experts(probe)
    supers = {(s.layer, s.expert) for s in found}
    controls = {(s.layer, s.expert): expert_controls(probe, s.layer, s.expert, supers) for s in found}
    for s in found:
        s.control_expert = controls[(s.layer, s.expert)][0].subject[1] if controls[(s.layer, s.expert)] else None
    out = {"rule": RULE, "percentile": found[0].percentile if found else None,
           "overall_max": found[0].overall_max if found else None, "experts": found, "together": None}
    if threshold is None or not found or runner is None:
        return out
    matched = "max |down_proj output| on the probe (routed experts of the same layer)"
    claims = []
    for s in found:
        ctl = controls[(s.layer, s.expert)]
        claims.append(Claim(f"e:{s.layer}.{s.expert}", ClaimKind.EXPERT,
                            Arm(f"prune expert {s.layer}·e{s.expert}", Edit(experts=((s.layer, s.expert),)),
                                f"expert {s.expert} of layer {s.layer} pruned", s.out_max),
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
    from swtui.core.evidence import fields

    together = result.get("together")
    return {"rule": result["rule"], "percentile": result["percentile"], "overall_max": result["overall_max"],
            "experts": [s.to_json() for s in result["experts"]],
            "together": None if together is None else {
                "experts": [list(k) for k in together["experts"]], **fields("ppl_ratio", together["ratio"]),
                **fields("control_ratio", together["control"])}}
