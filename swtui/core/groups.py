"""The impact check: candidates, channels and their controls, each with an interval.

One weight alone can look harmless while a group of writers carries the massive activation, or
the activation matters although no weight carries it. So, on top of the current state and on the
evaluation text, this measures per-token losses (paired across arms, `swtui.core.evidence`) for

- each candidate weight pruned alone, and beside it its *control*: a weight of matched magnitude
  drawn (seeded) from the same tensor, outside every candidate's and massive channel's row;
- each channel (a massive residual channel from `swtui.core.channels`, or the row of a
  candidate): its carriers' weights pruned together (where there are several), beside their
  control weights pruned together; for a massive
  channel also its MLP write zeroed at *every* layer, beside its control: a channel drawn (seeded)
  from the others, zeroed the same way;
- where pruning a weight hurts: the same with its super activation restored.

Each arm's ratio ppl(arm)/ppl(base) carries a 95% interval; a verdict compares the interval, not
the point, with the impact threshold (`Ratio.effect`). The verdicts, one definition each:

- "super weight": pruning it alone hurts (interval above the threshold) and its control does not;
- "super weight group": no member alone hurts, the channel's carrier weights pruned together do
  (and their controls together do not);
- "massive activation without a super weight": no weight or group hurts, zeroing the channel's MLP
  write at every layer does, and the channel control does not;
- "harmless": every interval of the above lies below the threshold;
- "inconclusive": anything else (an interval straddling the threshold, or a control that hurts too).

Arms run as rows of one batch where the A/B path batches (`swtui.core.scenarios`); candidates are
measured strongest first and stream out as soon as their arm and control are in.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable

from swtui.core.errors import check_cancel
from swtui.core.evidence import HURTS, NO_EFFECT, Ratio, paired_ratio, perplexity_of
from swtui.core.hooks import HookSet, _first_tensor
from swtui.core.scenarios import Scenario, scenario_runs
from swtui.core.session import Session
from swtui.core.verdicts import ACTIVATION, GROUP, HARMLESS, INCONCLUSIVE, SUPER  # noqa: F401 - re-exported

#: the control weight is drawn among this many weights nearest in magnitude
CONTROL_POOL = 16
CONTROL_SEED = 0


@dataclass
class WriterGroup:
    """One residual channel: a massive one (with its writers) or a candidate's row."""

    channel: int
    members: list[list[int]]  # candidate weights writing it: [[layer, row, col], ...]
    first_layer: int
    sa_before: float  # max |residual[..., channel]| from first_layer on, the current model
    sa_after: float  # the same with every carrier pruned
    ppl_base: float | None = None
    ppl_pruned_together: float | None = None
    ppl_pruned_sa_restored: float | None = None
    ppl_write_zeroed: float | None = None  # the MLP writes nothing on `channel`, at every layer
    verdict: str = HARMLESS
    massive: dict | None = None  # channels.MassiveChannel.to_dict() (writers, peak, persistence)
    carriers: list[list[int]] = field(default_factory=list)  # the members that carry the activation
    pruned_together: Ratio | None = None
    write_zeroed: Ratio | None = None
    control: Ratio | None = None  # a random other channel's writes zeroed at every layer
    control_channel: int | None = None
    sa_restored: Ratio | None = None  # the carriers pruned with their super activations restored
    together_control: Ratio | None = None  # the carriers' control weights pruned together

    @property
    def sa_remaining(self) -> float:
        return self.sa_after / self.sa_before if self.sa_before else 0.0

    def to_dict(self) -> dict:
        return dict(asdict(self), sa_remaining=self.sa_remaining)


@dataclass
class Impact:
    """The impact check's result beyond the per-candidate fields."""

    groups: list[WriterGroup]
    ppl_base: float | None = None
    eval_tokens: int | None = None
    threshold: float | None = None


def residual_channel_max(session: Session, prompt: str, channel: int, from_layer: int) -> float:
    """max |h[..., channel]| over the decoder layers' outputs from `from_layer` on."""
    import torch

    seen: list = []

    def hook(module, args, output):
        seen.append(_first_tensor(output)[..., channel].abs().max())

    ids = session.encode(prompt)
    (names, ctx), = session.variant_runs(("current",))
    with ctx, HookSet() as hooks, torch.no_grad():
        for site in session.adapter.sites[from_layer:]:
            hooks.add(site.layer.register_forward_hook(hook))
        session.model(input_ids=ids, use_cache=False)
    return float(torch.stack(seen).max())


def writer_groups(session: Session, candidates, prompt: str, channels=()) -> list[WriterGroup]:
    """One WriterGroup per massive channel and per other channel the candidates write, with the
    activation left after pruning its carriers (no perplexity). A candidate that a massive channel's
    writers list as a canceller is a member but not a carrier."""
    by_channel: dict[int, list] = {}
    for cand in candidates:
        by_channel.setdefault(cand.row, []).append(cand)
    massive = {m.channel: m for m in channels}
    groups = []
    for channel in sorted(set(by_channel) | set(massive), key=lambda c: (c not in massive, c)):
        members = by_channel.get(channel, [])
        m = massive.get(channel)
        cancel_keys = {w.key for w in m.cancellers} if m else set()
        carriers = [list(c.key) for c in members if c.key not in cancel_keys]
        first = m.first_layer if m else min(c.layer for c in members)
        group = WriterGroup(channel, [list(c.key) for c in members], first,
                            sa_before=residual_channel_max(session, prompt, channel, first), sa_after=0.0,
                            massive=m.to_dict() if m else None, carriers=carriers)
        keys = [tuple(k) for k in carriers if session.ledger.edit(tuple(k)) is None]
        for key in keys:
            session.ledger.prune(*key)
        try:
            group.sa_after = residual_channel_max(session, prompt, channel, first) if keys else group.sa_before
        finally:
            for key in reversed(keys):
                session.ledger.restore(*key)
        groups.append(group)
    return groups


def control_weight(session: Session, key, exclude_rows, exclude_keys, seed: int = CONTROL_SEED):
    """A weight of the same tensor with |w| nearest |W[key]|, drawn (seeded) among the CONTROL_POOL
    nearest, outside `exclude_rows` (the channels under study) and `exclude_keys`."""
    import torch

    from swtui.core.offload import real_tensor

    layer, row, col = key[:3]
    expert = key[3] if len(key) > 3 else None
    site = session.adapter.site(layer)
    w = real_tensor(session.model, site.weight_name, site.weight.detach()).float()
    if expert is not None:  # fused experts: the same expert's down projection
        w = w[expert]
    if site.transposed:
        w = w.t()
    target = abs(session.ledger.pristine_value(*key))
    dist = (w.abs() - target).abs().double()
    rows = sorted({r for r in exclude_rows if 0 <= r < w.shape[0]})
    if rows:
        dist[rows] = float("inf")
    for k in exclude_keys:
        lr, r, c = k[:3]
        same = lr == layer and (k[3] if len(k) > 3 else None) == expert
        if same and 0 <= r < w.shape[0] and 0 <= c < w.shape[1]:
            dist[r, c] = float("inf")
    # a stable sort on (distance, flat index): ties (common on a quantized source) break the same way
    # on every device and torch version
    order = torch.sort(dist.reshape(-1), stable=True).indices[:CONTROL_POOL].tolist()
    pool = [i for i in order if dist.reshape(-1)[i] != float("inf")]
    if not pool:
        return None
    flat = random.Random(f"{seed}/{layer}/{row}/{col}" + ("" if expert is None else f"/{expert}")).choice(pool)
    return (layer, flat // w.shape[1], flat % w.shape[1]) + (() if expert is None else (expert,))


def control_channel(hidden: int, exclude, seed: int, channel: int) -> int | None:
    """A channel drawn (seeded) from the hidden size, outside `exclude`."""
    excluded = set(exclude)
    choices = [c for c in range(hidden) if c not in excluded]
    return random.Random(f"{seed}/channel/{channel}").choice(choices) if choices else None


def judge(session: Session, candidates, prompt: str, impact_threshold: float | None,
          cancel: threading.Event | None = None, measured: Callable | None = None,
          progress: Callable[[float], None] | None = None, together: bool = True, channels=(),
          text: str | None = None, max_tokens: int | None = None) -> Impact:
    """Groups always; losses, intervals, controls and verdicts when `impact_threshold` is set.
    `measured(cand)` is called as soon as a candidate's own figures (and its control's) are known.
    `together=False` measures each candidate alone and nothing else: enough to know which weights
    to hold out."""
    from swtui.core.metrics import token_losses

    groups = writer_groups(session, candidates, prompt, channels) if together else []
    impact = Impact(groups, threshold=impact_threshold)
    if impact_threshold is None or not candidates and not groups:
        return impact
    losses: dict = {}
    ratio: dict[str, Ratio] = {}
    effect = lambda name: ratio[name].effect(impact_threshold) if name in ratio else None  # noqa: E731
    n_layers = session.adapter.n_layers
    hidden = session.adapter.site(0).out_features
    study_rows = {g.channel for g in groups} | {c.row for c in candidates}
    all_keys = {c.key for c in candidates}
    role = {}  # a writing layer's role on its channel holds for every weight of that layer and row
    for m in channels:
        for w in m.writers:
            role[(w.layer, w.row)] = w.role
    for c in candidates:
        c.ppl_pruned = c.ppl_sa_restored = c.ratio = c.control = c.sa_ratio = None
        c.role = role.get((c.layer, c.row))
        c.control_key = control_weight(session, c.key, study_rows, all_keys)

    name = {c.key: f"c{i}" for i, c in enumerate(candidates)}  # arm names: c<i> pruned, k<i> its control
    ctl_name = {c.key: f"k{i}" for i, c in enumerate(candidates)}

    def decide(c) -> None:  # a missing control is no evidence: it leaves a hurting weight inconclusive
        own, ctl = effect(name[c.key]), (effect(ctl_name[c.key]) if c.control_key else None)
        c.is_super = own == HURTS and ctl == NO_EFFECT
        c.verdict = SUPER if c.is_super else HARMLESS if own == NO_EFFECT else INCONCLUSIVE

    def measure(scenarios: list[Scenario], stage: float, span: float) -> None:
        runs = scenario_runs(session, scenarios)
        for n, run in enumerate(runs):
            check_cancel(cancel, "detection cancelled")
            losses.update(token_losses(session, text, runs=[run], max_tokens=max_tokens))
            for arm in run[0]:
                if arm != "base" and "base" in losses:
                    ratio[arm] = paired_ratio(losses["base"], losses[arm])
            base = perplexity_of(losses["base"])
            for c in order:  # stream each candidate once its figure and its control's are in
                if c.ratio is None and name[c.key] in ratio and (c.control_key is None or ctl_name[c.key] in ratio):
                    c.ppl_base, c.ratio = base, ratio[name[c.key]]
                    c.ppl_pruned = base * c.ratio.value
                    c.control = ratio.get(ctl_name[c.key])
                    decide(c)
                    if measured:
                        measured(c)
            if progress:
                progress(stage + span * (n + 1) / len(runs))

    # strongest first: the largest spike (or write) is measured, judged and shown first
    order = sorted(candidates, key=lambda c: -abs(c.out_act or c.write or c.value or 0.0))
    first = [Scenario("base")]
    for c in order:
        first.append(Scenario(name[c.key], (c.key,)))
        if c.control_key:
            first.append(Scenario(ctl_name[c.key], (c.control_key,)))
    measure(first, 0.0, 0.5 if together else 1.0)
    base = impact.ppl_base = perplexity_of(losses["base"])
    impact.eval_tokens = int(losses["base"].numel())
    if not together:
        return impact
    # channels: carriers together, writes zeroed at every layer, a control channel the same way
    second = []
    by_key = {c.key: c for c in candidates}
    for g in groups:
        if len(g.carriers) > 1:
            second.append(Scenario(f"g{g.channel}", tuple(tuple(k) for k in g.carriers)))
            controls = tuple(by_key[tuple(k)].control_key for k in g.carriers if by_key[tuple(k)].control_key)
            if controls:  # the group's control: the carriers' control weights pruned together
                second.append(Scenario(f"q{g.channel}", controls))
        if g.massive is None:  # the activation question is asked of massive channels only
            continue
        g.control_channel = control_channel(hidden, study_rows, CONTROL_SEED, g.channel)
        second.append(Scenario(f"w{g.channel}", zero_writes=tuple((layer, g.channel) for layer in range(n_layers))))
        if g.control_channel is not None:
            second.append(Scenario(f"r{g.channel}", zero_writes=tuple((layer, g.control_channel)
                                                                      for layer in range(n_layers))))
    for c in order:  # where pruning hurts: does restoring the super activation recover it?
        if effect(name[c.key]) == HURTS and c.expert is None:  # (not in fused experts: unsupported)
            second.append(Scenario(f"{name[c.key]}+sa", (c.key,), sa_restore=True))
    if second:
        measure(second, 0.5, 0.4)
    third = []  # a group that hurts with no super weight in it: does restoring its activations recover it?
    for g in groups:
        if len(g.carriers) > 1 and effect(f"g{g.channel}") == HURTS and all(len(k) == 3 for k in g.carriers) \
                and not any(by_key[tuple(k)].is_super for k in g.carriers):
            third.append(Scenario(f"g{g.channel}+sa", tuple(tuple(k) for k in g.carriers), sa_restore=True))
    if third:
        measure(third, 0.9, 0.1)
    for c in candidates:
        c.sa_ratio = ratio.get(f"{name[c.key]}+sa")
        c.ppl_sa_restored = base * c.sa_ratio.value if c.sa_ratio else None
    for g in groups:
        carriers = [by_key[tuple(k)] for k in g.carriers]
        together_name = f"g{g.channel}" if len(carriers) > 1 else (name[carriers[0].key] if carriers else None)
        g.ppl_base = base
        g.pruned_together = ratio.get(together_name) if together_name else None
        g.write_zeroed, g.control = ratio.get(f"w{g.channel}"), ratio.get(f"r{g.channel}")
        g.ppl_pruned_together = base * g.pruned_together.value if g.pruned_together else None
        g.ppl_write_zeroed = base * g.write_zeroed.value if g.write_zeroed else None
        g.sa_restored = carriers[0].sa_ratio if len(carriers) == 1 else ratio.get(f"g{g.channel}+sa")
        g.ppl_pruned_sa_restored = base * g.sa_restored.value if g.sa_restored else None
        g.together_control = ratio.get(f"q{g.channel}") if len(carriers) > 1 else \
            (carriers[0].control if carriers else None)
        g.verdict = _channel_verdict(g, carriers, effect(together_name) if together_name else None,
                                     g.together_control.effect(impact_threshold) if g.together_control else None,
                                     effect(f"w{g.channel}"), effect(f"r{g.channel}"))
        for m in carriers:
            if not m.is_super and g.verdict in (GROUP, ACTIVATION):
                m.verdict = g.verdict
    return impact


def _channel_verdict(g: WriterGroup, carriers, together, together_control, zeroed, control) -> str:
    if any(m.is_super for m in carriers):
        return SUPER
    if together == HURTS:
        return GROUP if together_control == NO_EFFECT else INCONCLUSIVE
    if zeroed == HURTS:
        weights_harmless = together in (None, NO_EFFECT) and all(m.verdict != INCONCLUSIVE for m in carriers)
        return ACTIVATION if control == NO_EFFECT and weights_harmless else INCONCLUSIVE
    if (zeroed == NO_EFFECT or g.massive is None) and together in (None, NO_EFFECT) \
            and all(m.verdict == HARMLESS for m in carriers):
        return HARMLESS
    return INCONCLUSIVE


def evidence(c) -> str:
    """One line of evidence for a candidate's verdict."""
    parts = []
    if c.ratio is not None:
        parts.append(f"ppl {c.ratio.text()} pruned")
    if c.control is not None:
        parts.append(f"control {c.control.text()}")
    if c.sa_ratio is not None:
        parts.append(f"{c.sa_ratio.text()} with SA restored")
    if c.role:
        parts.append(f"a {c.role} of its channel")
    if c.share is not None:
        parts.append(f"writes {c.share:.0%} of its spike")
    if c.prompts_total:
        parts.append(f"spikes on {c.prompts_spiking}/{c.prompts_total} prompts")
    return "; ".join(parts)
