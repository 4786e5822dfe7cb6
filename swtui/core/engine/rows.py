"""Findings as the protocol's rows, the form the TUI gets: the named super weights
(`super_weight_rows`), a channel judged (`group_row`), a claim's evidence (`evidence_row`) and the
event that closes a detection (`detection_done`). Their JSON form is `findings`.
"""

from __future__ import annotations

from swtui.core.engine import protocol as ev
from swtui.core.evidence.stats import Ratio
from swtui.core.verdicts import Verdict, is_super_or_member


def evidence_row(d: dict | None) -> "ev.EvidenceRow | None":
    """A claim's JSON (`plan.ClaimResult.to_json`) as the protocol's row."""
    if not d:
        return None
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


def super_weight_rows(session, measuring: bool = False) -> list:
    """`session`'s named super weights as `protocol.SuperWeightRow`s; `measuring`: detection is still
    judging (its temporary zeroing is not the user's state)."""
    rows = []
    for sw in session.super_weights:
        busy = measuring and sw.is_super is None
        edit = session.ledger.edit(sw.key)
        rows.append(ev.SuperWeightRow(
            sw.layer, sw.row, sw.col, value=sw.value,
            current=sw.value if busy else session.ledger.current_value(*sw.key),
            state="measuring…" if busy else session.state_of(sw.key),
            pruned=edit is not None and edit.op == "prune", sa_restored=sw.key in session.sa_restore,
            measuring=busy, label=sw.label, source=sw.source, verdict=sw.verdict, is_super=sw.is_super,
            ppl_base=sw.ppl_base, ppl_pruned=sw.ppl_pruned, zscore=sw.zscore, share=sw.share,
            prompts_spiking=sw.prompts_spiking, prompts_total=sw.prompts_total,
            ratio=None if busy and not sw.provisional else sw.ratio, control=None if busy else sw.control,
            provisional=Verdict.of(sw.provisional) if busy else None,
            control_key=sw.control_key, sa_ratio=None if busy else sw.sa_ratio, role=sw.role,
            expert=sw.expert, contribution=sw.contribution, small_effect=sw.small_effect,
            evidence=None if busy else evidence_row(sw.evidence)))
    return rows
