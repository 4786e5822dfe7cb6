"""Findings as the protocol's rows, the form the TUI gets: the named super weights
(`super_weight_rows`), a channel judged (`group_row`), a claim's evidence (`evidence_row`) and the
event that closes a detection (`detection_done`). Their JSON form is `findings`.
"""

from __future__ import annotations

import dataclasses

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


def by_name(cls, source, **given):
    """A `cls` row whose fields are `given`, or else `source`'s attribute (a dict's key) of the same
    name: built by name, never by position, so a field added to either cannot shift the others.
    A field `source` lacks and `given` does not name is an error, not a default."""
    get = source.__getitem__ if isinstance(source, dict) else lambda name: getattr(source, name)
    return cls(**{f.name: given[f.name] if f.name in given else get(f.name) for f in dataclasses.fields(cls)})


def writer_row(w: dict) -> ev.WriterRow:
    """One writer of a massive channel (`channels.Writer.to_dict()`, as its group keeps it) as the
    protocol's row."""
    return by_name(ev.WriterRow, w)


def group_row(g) -> ev.GroupRow:
    """A channel judged (groups.WriterGroup) as the protocol's row: its fields of the same name, and
    what the row says of its massive channel (`g.massive`, that channel's dict) and of its claims."""
    m = g.massive or {}
    return by_name(ev.GroupRow, g, members=[tuple(k) for k in g.members], carriers=[tuple(k) for k in g.carriers],
                   massive=bool(m), peak=m.get("peak"), persist_layers=m.get("persist_layers"),
                   writers=[writer_row(w) for w in m.get("writers", [])],
                   evidence=tuple(evidence_row(e) for e in (g.evidence or {}).values()))


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
        rows.append(by_name(
            ev.SuperWeightRow, sw,
            current=sw.value if busy else session.ledger.current_value(*sw.key),
            state="measuring…" if busy else session.state_of(sw.key),
            pruned=edit is not None and edit.op == "prune", sa_restored=sw.key in session.sa_restore,
            measuring=busy, ratio=None if busy and not sw.provisional else sw.ratio,
            control=None if busy else sw.control, sa_ratio=None if busy else sw.sa_ratio,
            provisional=Verdict.of(sw.provisional) if busy else None,
            evidence=None if busy else evidence_row(sw.evidence)))
    return rows
