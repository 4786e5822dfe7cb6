"""Detection's findings as JSON, the one form `scan --json` and snapshots share, and as the
protocol's rows (`detection_done`), the form the TUI gets.

Every ratio is flat, `<name>` beside `<name>_ci95: [lo, hi]` (`swtui.core.evidence.fields`);
the threshold the intervals were compared with, the tokens they rest on and the interval method
are stated at the top level.
"""

from __future__ import annotations

from swtui.core import protocol as ev
from swtui.core.evidence import METHOD, fields
from swtui.core.verdicts import is_super_or_member


def candidate_json(c, coord_label=None) -> dict:
    """A candidate (session.SuperWeight) as JSON."""
    d = c.to_dict()
    for key in ("ratio", "control", "sa_ratio"):
        d.pop(key, None)
    d.update(fields("ppl_ratio", c.ratio))
    d.update(fields("control_ratio", c.control))
    d.update(fields("sa_ratio", c.sa_ratio))
    d["control_key"] = list(c.control_key) if c.control_key else None
    if coord_label is not None:
        d["name"] = coord_label(*c.key)
    return d


def channel_json(g) -> dict:
    """A channel judged (groups.WriterGroup) as JSON: writers, ablations with intervals, verdict."""
    m = g.massive or {}
    return {
        "channel": g.channel, "massive": bool(m), "first_layer": g.first_layer, "token": m.get("token"),
        "peak": m.get("peak"), "peak_layer": m.get("peak_layer"), "peak_ratio": m.get("peak_ratio"),
        "persist_layers": m.get("persist_layers"),
        "writers": [{k: w[k] for k in ("layer", "row", "col", "share", "sign", "role", "write", "weight_share")}
                    for w in m.get("writers", [])],
        "members": [list(k) for k in g.members], "carriers": [list(k) for k in g.carriers],
        "activation": {"before": g.sa_before, "after_carriers_pruned": g.sa_after, "remaining": g.sa_remaining},
        "ablations": {**fields("pruned_together", g.pruned_together),
                      "pruned_together_note": getattr(g, "together_note", None),
                      **fields("pruned_together_control", g.together_control),
                      **fields("pruned_sa_restored", g.sa_restored),
                      **fields("positions_zeroed", getattr(g, "positions_zeroed", None)),
                      "positions_zeroed_share": getattr(g, "positions_share", None),
                      "control_channel": g.control_channel, **fields("control", g.control),
                      **fields("write_zeroed", g.write_zeroed),
                      **fields("write_zeroed_control", getattr(g, "write_control", None)),
                      "write_zeroed_layers": "all" if m else None},
        "evidence": getattr(g, "evidence", None),
        "verdict": g.verdict,
    }


def judged_json(detection) -> dict:
    """What the verdicts rest on: threshold, tokens, interval method, channel rule."""
    from swtui.core.channels import RULE

    impact = detection.impact
    schedule = getattr(impact, "schedule", None)
    return {"impact_threshold": detection.options.impact_threshold if detection.options.impact else None,
            "eval_tokens": impact.eval_tokens if impact is not None else None,
            "interval_method": schedule.method() if schedule is not None else METHOD,
            "plan": None if schedule is None else {**schedule.to_json(), "corpus": impact.corpus, "cost": impact.cost},
            "channel_rule": RULE,
            "channels": [channel_json(g) for g in detection.groups]}


def evidence_row(d: dict | None) -> "ev.EvidenceRow | None":
    """A claim's JSON (`plan.ClaimResult.to_json`) as the protocol's row."""
    if not d:
        return None
    from swtui.core.evidence import Ratio

    def arm(a: dict) -> ev.ArmRow:
        ci = a.get("ratio_ci95")
        r = None if a.get("ratio") is None else Ratio(a["ratio"], *(x if x is not None else float("inf") for x in ci),
                                                       a.get("eval_tokens") or 0)
        return ev.ArmRow(a["name"], a["what"], a.get("magnitude"), r, a.get("looks", 0), a.get("stopped", ""))

    return ev.EvidenceRow(d["kind"], d.get("matched_on", ""), d.get("outcome"), bool(d.get("small_effect")),
                          arm(d["treatment"]), tuple(arm(c) for c in d.get("controls", [])), d.get("interval_level"))


def group_row(g) -> ev.GroupRow:
    """A channel judged (groups.WriterGroup) as the protocol's row."""
    m = g.massive or {}
    writers = [ev.WriterRow(w["layer"], w["row"], w["col"], w["share"], w["role"]) for w in m.get("writers", [])]
    return ev.GroupRow(g.channel, [tuple(k) for k in g.members], g.first_layer, g.sa_before, g.sa_after,
                       g.sa_remaining, g.verdict, g.ppl_base, g.ppl_pruned_together, g.ppl_pruned_sa_restored,
                       g.ppl_write_zeroed, massive=bool(m), peak=m.get("peak"), persist_layers=m.get("persist_layers"),
                       writers=writers, carriers=[tuple(k) for k in g.carriers], pruned_together=g.pruned_together,
                       together_control=g.together_control, sa_restored=g.sa_restored,
                       write_zeroed=g.write_zeroed, control=g.control, control_channel=g.control_channel,
                       positions_zeroed=getattr(g, "positions_zeroed", None), write_control=getattr(g, "write_control", None),
                       evidence=tuple(evidence_row(e) for e in (getattr(g, "evidence", None) or {}).values()))


def detection_done(d) -> ev.DetectionDone:
    """The event that closes a detection: candidates in the order found, the super ones, each channel."""
    impact = d.impact
    return ev.DetectionDone([c.key for c in d.candidates], [c.key for c in d.candidates if is_super_or_member(c)],
                            d.stop_reason, [group_row(g) for g in d.groups],
                            impact.threshold if impact is not None else None,
                            impact.eval_tokens if impact is not None else None)
