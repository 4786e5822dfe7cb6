"""The impact check: detection's candidates and channels as claims of the evaluation plan, and
the verdicts their outcomes give.

The claims (each a treatment beside `controls.K` controls matched on what the claim is about):

- **weight**: the candidate pruned alone, beside the weights nearest to it in |x·w|;
- **carriers together** (a channel with several carrier weights, none of them a super weight
  alone): pruned together, beside sets made the same way (the j-th control of every carrier);
  measured after the weights' claims, and only where no carrier alone cleared;
- **massive positions** (a massive channel): its MLP writes zeroed, at every layer, at the token
  positions where it is massive in each window (the massive-activation literature's ablation),
  beside the channels nearest in write energy zeroed at the same positions;
- **every token** (a massive channel): the same at every token — a separate, labelled arm: a
  channel's ordinary role as an outlier feature shows here too, so it decides no verdict and is
  measured at the first two looks only (descriptive: its interval beside its controls').
- then, where pruning hurts, the same with the super activation restored (descriptive).

Verdicts (`swtui.core.verdicts`), from the outcomes (`plan.Outcome`):

- "super weight": its weight claim clears the threshold and every control;
- "super weight group": no carrier alone is one, the carriers together clear (and their controls);
- "massive activation without a super weight": the massive-positions claim clears while every
  weight claim of the channel (alone and together) lies below the threshold;
- "below threshold": every treatment of the above lies below the threshold (`small_effect` when an
  interval also excludes 1);
- "inconclusive": anything else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from swtui.core.detection.controls import Control, channel_controls, contribution, input_peaks, weight_controls, write_energy
from swtui.core.evidence.plan import Arm, Claim, ClaimKind, ClaimResult, Edit, Effect, Outcome, Schedule
from swtui.core.verdicts import ACTIVATION, BELOW, GROUP, INCONCLUSIVE, SUPER


@dataclass
class Impact:
    """The impact check's result beyond the per-candidate fields."""
    groups: list
    ppl_base: float | None = None
    eval_tokens: int | None = None
    threshold: float | None = None
    schedule: Schedule | None = None
    claims: list[ClaimResult] = field(default_factory=list)
    corpus: dict | None = None
    cost: dict | None = None
    runner: object = None  # the arms.PlanRunner: later claims of the same scan share its baseline


def _label(key) -> str:
    layer, row, col = key[:3]
    return f"{layer}[{row},{col}]" + (f"·e{key[3]}" if len(key) > 3 else "")


def weight_claim(session, cand, peaks, study_rows, all_keys) -> Claim:
    magnitude, unit = contribution(session, cand.key, peaks)
    controls = weight_controls(session, cand.key, peaks, study_rows, all_keys)
    return Claim(f"w:{_label(cand.key)}", ClaimKind.WEIGHT,
                 Arm(f"prune {_label(cand.key)}", Edit(prune=(cand.key,)), f"prune {_label(cand.key)}", magnitude),
                 tuple(Arm(f"prune {_label(c.subject)} (control of {_label(cand.key)})", Edit(prune=(c.subject,)),
                           f"prune {_label(c.subject)}", c.magnitude) for c in controls),
                 matched_on=f"{unit} on the probe", priority=abs(cand.out_act or cand.write or cand.value or 0.0),
                 subject=cand.key)


def channel_claims(group, energy, exclude, n_layers: int) -> list[Claim]:
    c = group.channel
    controls: list[Control] = channel_controls(energy, c, exclude)
    e = float(energy[c])
    at = lambda ch: tuple((layer, ch, c) for layer in range(n_layers))  # noqa: E731
    every = lambda ch: tuple((layer, ch) for layer in range(n_layers))  # noqa: E731
    positions = Claim(f"p:{c}", ClaimKind.POSITIONS,
                      Arm(f"zero ch{c} at its massive positions", Edit(zero_at=at(c)),
                          f"ch{c}'s MLP writes zeroed where it is massive, all layers", e),
                      tuple(Arm(f"zero ch{k.subject[0]} at ch{c}'s massive positions", Edit(zero_at=at(k.subject[0])),
                                f"ch{k.subject[0]} zeroed at ch{c}'s massive positions", k.magnitude) for k in controls),
                      matched_on="MLP write energy on the probe", priority=-1.0, subject=(c,))
    tokens = Claim(f"t:{c}", ClaimKind.ALL_TOKENS,
                   Arm(f"zero ch{c} at every token", Edit(zero_writes=every(c)),
                       f"ch{c}'s MLP writes zeroed at every token, all layers", e),
                   tuple(Arm(f"zero ch{k.subject[0]} at every token", Edit(zero_writes=every(k.subject[0])),
                             f"ch{k.subject[0]} zeroed at every token", k.magnitude) for k in controls),
                   matched_on="MLP write energy on the probe", priority=-3.0, decides=False, subject=(c,),
                   max_looks=2)
    return [positions, tokens]


def group_claim(group, weight_claims: dict) -> Claim | None:
    carriers = [tuple(k) for k in group.carriers]
    if len(carriers) < 2:
        return None
    controls = []
    for j in range(min(len(weight_claims[k].controls) for k in carriers)):
        keys = tuple(weight_claims[k].controls[j].edit.prune[0] for k in carriers)
        controls.append(Arm(f"prune control set {j + 1} of ch{group.channel}'s carriers", Edit(prune=keys),
                            f"{len(keys)} control weights together",
                            sum(weight_claims[k].controls[j].magnitude or 0.0 for k in carriers)))
    return Claim(f"g:{group.channel}", ClaimKind.GROUP,
                 Arm(f"prune ch{group.channel}'s {len(carriers)} carriers together", Edit(prune=tuple(carriers)),
                     f"prune {', '.join(_label(k) for k in carriers)}",
                     sum(weight_claims[k].treatment.magnitude or 0.0 for k in carriers)),
                 tuple(controls), matched_on="each carrier's controls (|x·w|), taken together", priority=-2.0,
                 subject=(group.channel,))


def judge(session, candidates, prompt: str, impact_threshold: float | None, corpus=None,
          cancel: threading.Event | None = None, measured: Callable | None = None,
          progress: Callable[[float], None] | None = None, together: bool = True, channels=(),
          runner=None, extra_decisions: int = 0, sequential: bool = True) -> Impact:
    """Groups always; claims, intervals, controls and verdicts when `impact_threshold` is set.
    `measured(cand)` is called as soon as a candidate's claim is decided (strongest first).
    `together=False` judges each candidate alone and nothing else. `runner` (an arms.PlanRunner)
    can be passed to share its baseline with later claims; `extra_decisions` counts claims judged
    later on the same runner (super experts) in the family-wise error."""
    from swtui.core.evidence.stream_plan import make_runner
    from swtui.core.evidence.stats import perplexity_of
    from swtui.core.detection.groups import writer_groups

    groups = writer_groups(session, candidates, prompt, channels) if together else []
    impact = Impact(groups, threshold=impact_threshold)
    if impact_threshold is None or not candidates and not groups:
        return impact
    n_layers = session.adapter.n_layers
    study_rows = {g.channel for g in groups} | {c.row for c in candidates}
    massive = [m.channel for m in channels]
    all_keys = {c.key for c in candidates} | {w.key for m in channels for w in m.writers if w.key}
    role = {(w.layer, w.row): w.role for m in channels for w in m.writers}
    peaks = input_peaks(session, prompt, [c.layer for c in candidates])
    weight = {}
    for c in candidates:
        c.ppl_pruned = c.ppl_sa_restored = c.ratio = c.control = c.sa_ratio = c.evidence = None
        c.verdict, c.is_super, c.provisional = None, None, None
        c.role = role.get((c.layer, c.row))
        weight[c.key] = weight_claim(session, c, peaks, study_rows, all_keys)
        c.contribution = weight[c.key].treatment.magnitude
        c.control_key = weight[c.key].controls[0].edit.prune[0] if weight[c.key].controls else None
    claims = list(weight.values())
    group_claims = []  # measured after the weights: needed only where no carrier alone is a super weight
    if together:
        energy = write_energy(session, prompt) if any(g.massive for g in groups) else None
        for g in groups:
            gc = group_claim(g, weight)
            if gc is not None:
                group_claims.append(gc)
            if g.massive is not None:
                claims.extend(channel_claims(g, energy, set(massive) | study_rows, n_layers))
    if runner is None:
        from swtui.core.evidence.corpus import build

        corpus = corpus or build(session.tokenizer, context_length=session.context_length)
        # every claim that may decide counts, a group claim that turns out not to be needed too
        n, m = len(corpus.windows), sum(c.decides for c in claims + group_claims) + extra_decisions
        schedule = Schedule.for_budget(n, m) if sequential else Schedule((n,), m)
        runner = make_runner(session, corpus, impact_threshold, schedule, massive)
    impact.schedule, impact.corpus, impact.runner = runner.schedule, runner.corpus.to_json(), runner
    by_key = {c.key: c for c in candidates}
    results: dict[str, ClaimResult] = {}

    def decided(r: ClaimResult) -> None:
        if r.claim.kind != ClaimKind.WEIGHT:
            results[r.claim.name] = r
            return
        cand = by_key[r.claim.subject]
        if r.done:
            results[r.claim.name] = r
            _fill_candidate(cand, r, runner)
        else:  # its treatment decided, its controls still measured: shown marked provisional
            cand.ratio, cand.provisional = r.treatment.ratio, (SUPER if r.provisional == Effect.HURTS else BELOW)
        if measured:
            measured(cand)

    runner.run(claims, decided, cancel, (lambda f: progress(0.7 * f)) if progress else None)
    needed = [gc for gc in group_claims if not any(by_key[k].is_super for k in gc.treatment.edit.prune)]
    if needed:
        runner.run(needed, decided, cancel, (lambda f: progress(0.7 + 0.1 * f)) if progress else None)
    claims += needed
    base = perplexity_of(_cat(runner.base))
    impact.ppl_base = base
    impact.eval_tokens = sum(b.numel() for b in runner.base if b is not None)
    # where pruning hurts: does restoring the super activation recover it? (descriptive, no control)
    follow = []
    for c in candidates:
        r = results.get(weight[c.key].name)
        if r and r.effect() == Effect.HURTS and c.expert is None:
            follow.append(Claim(f"sa:{_label(c.key)}", ClaimKind.SA_RESTORE,
                                Arm(f"prune {_label(c.key)} + SA restored", Edit(prune=(c.key,), sa_restore=True),
                                    f"prune {_label(c.key)}, its super activation restored"),
                                decides=False, priority=r.treatment.ratio.value, subject=c.key))
    for g in groups:
        r = results.get(f"g:{g.channel}")
        if r and r.effect() == Effect.HURTS and all(len(k) == 3 for k in g.carriers):
            follow.append(Claim(f"gsa:{g.channel}", ClaimKind.SA_RESTORE,
                                Arm(f"prune ch{g.channel}'s carriers + SA restored",
                                    Edit(prune=tuple(tuple(k) for k in g.carriers), sa_restore=True),
                                    "carriers pruned, super activations restored"),
                                decides=False, priority=-5.0, subject=(g.channel,)))
    if follow:
        for r in runner.run(follow, None, cancel, (lambda f: progress(0.8 + 0.2 * f)) if progress else None):
            results[r.claim.name] = r
    for c in candidates:
        _fill_candidate(c, results[weight[c.key].name], runner, results.get(f"sa:{_label(c.key)}"))
    for g in groups:
        _fill_group(g, candidates, results, base, runner)
    impact.claims = [results[c.name] for c in claims] + [results[c.name] for c in follow]
    impact.cost = runner.cost.to_json()
    return impact


def _cat(parts):
    import torch

    return torch.cat([p for p in parts if p is not None])


def arm_perplexity(runner, arm_result) -> float | None:
    """An arm's own perplexity on the windows it was measured on (ratio × the baseline's there)."""
    from swtui.core.evidence.stats import perplexity_of

    got = runner.arm_losses(arm_result) if arm_result is not None else None
    return perplexity_of(_cat(got)) if got else None


def _fill_candidate(c, r: ClaimResult, runner, sa: ClaimResult | None = None) -> None:
    from swtui.core.evidence.stats import perplexity_of

    worst = r.worst_control
    c.ratio = r.treatment.ratio
    c.control = worst.ratio if worst else None
    c.control_key = worst.arm.edit.prune[0] if worst else c.control_key
    c.evidence = r.to_json()
    c.ppl_base = perplexity_of(_cat(runner.base[:r.treatment.windows])) if r.treatment.windows else None
    c.ppl_pruned = arm_perplexity(runner, r.treatment)
    if sa is not None and sa.treatment.ratio is not None:
        c.sa_ratio = sa.treatment.ratio
        c.ppl_sa_restored = arm_perplexity(runner, sa.treatment)
    c.provisional = None
    c.is_super = r.outcome == Outcome.CLEARS
    c.verdict = SUPER if c.is_super else BELOW if r.outcome == Outcome.BELOW else INCONCLUSIVE
    c.small_effect = r.small_effect


def _fill_group(g, candidates, results: dict, base: float, runner) -> None:
    by_key = {c.key: c for c in candidates}
    carriers = [by_key[tuple(k)] for k in g.carriers if tuple(k) in by_key]
    together = results.get(f"g:{g.channel}")
    if together is None and len(carriers) == 1:
        together = results.get(f"w:{_label(carriers[0].key)}")
    positions, tokens = results.get(f"p:{g.channel}"), results.get(f"t:{g.channel}")
    sa = results.get(f"gsa:{g.channel}") if len(carriers) > 1 else \
        (results.get(f"sa:{_label(carriers[0].key)}") if carriers else None)
    g.ppl_base = base
    g.together_note = "not measured: a carrier alone is a super weight" \
        if together is None and len(carriers) > 1 and any(m.is_super for m in carriers) else None
    g.pruned_together = together.treatment.ratio if together else None
    g.together_control = together.worst_control.ratio if together and together.worst_control else None
    g.write_zeroed = tokens.treatment.ratio if tokens else None
    g.positions_zeroed = positions.treatment.ratio if positions else None
    g.positions_share = positions_share(runner, g.channel, positions.treatment.windows) if positions else None
    g.control = positions.worst_control.ratio if positions and positions.worst_control else None
    g.control_channel = positions.worst_control.arm.edit.zero_at[0][1] if positions and positions.worst_control else None
    g.write_control = tokens.worst_control.ratio if tokens and tokens.worst_control else None
    g.sa_restored = sa.treatment.ratio if sa else None
    g.ppl_pruned_together = arm_perplexity(runner, together.treatment) if together else None
    g.ppl_write_zeroed = arm_perplexity(runner, tokens.treatment) if tokens else None
    g.ppl_pruned_sa_restored = arm_perplexity(runner, sa.treatment) if sa else None
    g.evidence = {k: r.to_json() for k, r in (("together", together), ("positions", positions),
                                              ("all_tokens", tokens)) if r is not None}
    g.verdict = channel_verdict(g, carriers, together, positions)
    for m in carriers:
        if not m.is_super and g.verdict in (GROUP, ACTIVATION):
            m.verdict = g.verdict


def positions_share(runner, channel: int, windows: int) -> float | None:
    """The share of the first `windows` windows' positions where `channel` is massive (in some layer):
    what the massive-positions arm zeroes. Near 1, that arm is the every-token arm by another name."""
    marks = [runner.positions[w].get(channel) for w in range(windows)]
    marks = [m for m in marks if m is not None]
    total = sum(int(m.numel()) for m in marks)
    return sum(int(m.sum()) for m in marks) / total if total else None


def channel_verdict(g, carriers, together: ClaimResult | None, positions: ClaimResult | None):
    """A channel's verdict from its claims (see the module docstring)."""
    if any(m.is_super for m in carriers):
        return SUPER
    t = together.outcome if together else None
    if t == Outcome.CLEARS and together.claim.kind == ClaimKind.GROUP:
        return GROUP
    weights_below = t in (None, Outcome.BELOW) and all(m.verdict == BELOW for m in carriers)
    p = positions.outcome if positions else None
    if p == Outcome.CLEARS:
        return ACTIVATION if weights_below else INCONCLUSIVE
    if weights_below and (p == Outcome.BELOW or g.massive is None):
        return BELOW
    return INCONCLUSIVE
