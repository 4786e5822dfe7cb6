"""Super experts within a scan: profiled on calibration text, counted among the scan's decisions,
judged with the candidates' plan runner (or one of their own)."""

from __future__ import annotations

from typing import Callable


def expert_decisions(profile) -> int:
    """How many super-expert claims a scan will judge (they share its family-wise error)."""
    from swtui.core.detection.experts import find_super_experts

    found = find_super_experts(profile)
    return len(found) + (1 if len(found) > 1 else 0)


def expert_runner(session, opts, profile, corpus_of: Callable):
    """A plan runner for a scan whose only claims are super experts (None: no impact check)."""
    if not opts.impact:
        return None
    from swtui.core.evidence.plan import Schedule
    from swtui.core.evidence.stream_plan import make_runner

    corpus = corpus_of()
    decisions = max(1, expert_decisions(profile))
    n = len(corpus.windows)
    schedule = Schedule.for_budget(n, decisions) if opts.sequential else Schedule((n,), decisions)
    return make_runner(session, corpus, opts.impact_threshold, schedule)  # streamed: one pass per look


def judge_in_scan(session, result, corpus_of: Callable, progress, cancel, runner=None) -> None:
    """The super experts of `result.expert_profile`, judged with controls; each candidate in one of
    them carries its expert's figures (`super_expert`)."""
    from swtui.core.detection.experts import judge_super_experts

    opts = result.options
    progress("judging super experts", None)
    runner = runner or expert_runner(session, opts, result.expert_profile, corpus_of)
    result.super_experts = judge_super_experts(session, result.expert_profile,
                                               opts.impact_threshold if opts.impact else None, runner, cancel)
    by_expert = {(s.layer, s.expert): s for s in result.super_experts["experts"]}
    for cand in result.candidates:
        found = by_expert.get((cand.layer, cand.expert))
        cand.super_expert = found.to_json() if found is not None else None
