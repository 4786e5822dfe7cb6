"""Detection's findings as JSON, the one form `scan --json`, the census and snapshots share (and
back: `candidate_from_json`). Their form as the protocol's rows, which the TUI gets, is `rows`.

Every ratio is flat, `<name>` beside `<name>_ci95: [lo, hi]` (`swtui.core.evidence.stats.fields`);
the threshold the intervals were compared with, the tokens they rest on and the interval method
are stated at the top level.
"""

from __future__ import annotations

from swtui.core.evidence.stats import METHOD, Ratio, fields
from swtui.core.edits.session import SuperWeight


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
    from swtui.core.detection.channels import RULE

    impact = detection.impact
    schedule = getattr(impact, "schedule", None)
    return {"impact_threshold": detection.options.impact_threshold if detection.options.impact else None,
            "eval_tokens": impact.eval_tokens if impact is not None else None,
            "interval_method": schedule.method() if schedule is not None else METHOD,
            "plan": None if schedule is None else {**schedule.to_json(), "corpus": impact.corpus, "cost": impact.cost},
            "channel_rule": RULE,
            "channels": [channel_json(g) for g in detection.groups]}


def candidate_from_json(data: dict) -> SuperWeight:
    """A candidate from `candidate_json` or `SuperWeight.to_dict` (flat ratios with their `_ci95`, or
    nested)."""
    known = {k: v for k, v in data.items() if k in SuperWeight.__dataclass_fields__}
    for name, flat in (("ratio", "ppl_ratio"), ("control", "control_ratio"), ("sa_ratio", "sa_ratio")):
        value, ci = data.get(flat), data.get(f"{flat}_ci95")
        if isinstance(data.get(name), dict):  # to_dict's nested form
            known[name] = Ratio(**data[name])
        elif isinstance(value, (int, float)) and ci:
            known[name] = Ratio(value, ci[0], ci[1], data.get("eval_tokens") or 0)
        else:
            known[name] = None
    if known.get("control_key") is not None:
        known["control_key"] = tuple(known["control_key"])
    return SuperWeight(**known)
