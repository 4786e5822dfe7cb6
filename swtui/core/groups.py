"""The impact check: candidates judged alone, together, and against their activation.

One weight alone can look harmless while a group of writers carries the massive activation, or
the activation matters although no weight carries it. So, on top of the current state, this
measures perplexity with

- each candidate pruned alone;
- each group (the candidates writing one residual channel) pruned together;
- where a group's pruning does not hurt: its MLP write on that channel zeroed at the members'
  layers (activation ablation), and every candidate pruned (when there are several channels);
- where pruning hurts: the same with the super activations restored (does that recover it?;
  for a group holding a super weight, that weight's own restore answers),

and the residual activation on the channel (max |h[..., channel]| from the first writer on, on the
probe prompt) before and after pruning the group. Verdicts, each with its evidence:

- "super weight": pruning it alone hurts (ppl ratio ≥ the impact threshold);
- "super weight group": no member alone hurts, the group pruned together does;
- "massive activation without a super weight": pruning the weights does not hurt, zeroing the
  activation itself does (the activation matters; no single weight carries it);
- "harmless": none of these hurts.

The scenarios run as rows of one batch where the A/B path batches (`swtui.core.scenarios`).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Callable

from swtui.core.errors import Cancelled
from swtui.core.hooks import HookSet, _first_tensor
from swtui.core.scenarios import Scenario, scenario_runs
from swtui.core.session import Session

SUPER = "super weight"
GROUP = "super weight group"
ACTIVATION = "massive activation without a super weight"
HARMLESS = "harmless"


@dataclass
class WriterGroup:
    channel: int
    members: list[list[int]]  # [[layer, row, col], ...]
    first_layer: int
    sa_before: float  # max |residual[..., channel]| from first_layer on, the current model
    sa_after: float  # the same with every member pruned
    ppl_base: float | None = None
    ppl_pruned_together: float | None = None
    ppl_pruned_sa_restored: float | None = None
    ppl_write_zeroed: float | None = None  # the members' layers write nothing on `channel` (measured
    #                                        where pruning the group does not hurt)
    verdict: str = HARMLESS

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
    ppl_all_pruned: float | None = None  # every candidate pruned (several channels only)
    ppl_all_sa_restored: float | None = None


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


def writer_groups(session: Session, candidates, prompt: str) -> list[WriterGroup]:
    """One WriterGroup per residual channel the candidates write, with the activation left after
    pruning the whole group (no perplexity)."""
    by_channel: dict[int, list] = {}
    for cand in candidates:
        by_channel.setdefault(cand.row, []).append(cand)
    groups = []
    for channel, members in sorted(by_channel.items()):
        first = min(m.layer for m in members)
        group = WriterGroup(channel, [list(m.key) for m in members], first,
                            sa_before=residual_channel_max(session, prompt, channel, first), sa_after=0.0)
        keys = [m.key for m in members if session.ledger.edit(m.key) is None]
        for key in keys:
            session.ledger.prune(*key)
        try:
            group.sa_after = residual_channel_max(session, prompt, channel, first)
        finally:
            for key in reversed(keys):
                session.ledger.restore(*key)
        groups.append(group)
    return groups


def judge(session: Session, candidates, prompt: str, impact_threshold: float | None,
          cancel: threading.Event | None = None, measured: Callable | None = None,
          progress: Callable[[float], None] | None = None, together: bool = True) -> Impact:
    """Groups always; perplexities and verdicts when `impact_threshold` is set. `measured(cand)` is
    called as soon as a candidate's own figures are known. `together=False` measures each
    candidate alone and nothing else (no groups): enough to know which weights to hold out."""
    from swtui.core.metrics import perplexity

    groups = writer_groups(session, candidates, prompt) if together else []
    impact = Impact(groups)
    if impact_threshold is None or not candidates:
        return impact
    ppl: dict[str, float] = {}

    def measure(scenarios: list[Scenario], stage: float) -> None:
        runs = scenario_runs(session, scenarios)
        for n, run in enumerate(runs):
            if cancel is not None and cancel.is_set():
                raise Cancelled("detection cancelled")
            ppl.update(perplexity(session, runs=[run]))
            for i, c in enumerate(candidates):  # stream each candidate once its figure is in
                if c.ppl_pruned is None and f"c{i}" in ppl:
                    c.ppl_base, c.ppl_pruned = ppl["base"], ppl[f"c{i}"]
                    c.is_super = c.ppl_pruned / c.ppl_base >= impact_threshold
                    c.verdict = SUPER if c.is_super else HARMLESS  # groups may refine it
                    if measured:
                        measured(c)
            if progress:
                progress(stage + (n + 1) / len(runs) / 3)

    for c in candidates:
        c.ppl_pruned = c.ppl_sa_restored = None
    # 1. each candidate alone
    measure([Scenario("base")] + [Scenario(f"c{i}", (c.key,)) for i, c in enumerate(candidates)], 0.0)
    base = impact.ppl_base = ppl["base"]
    if not together:
        return impact
    hurts = lambda name: name in ppl and ppl[name] / base >= impact_threshold  # noqa: E731
    keys_of = {g.channel: tuple(tuple(m) for m in g.members) for g in groups}
    # 2. each group pruned together; where that does not hurt, the activation itself zeroed; every
    #    candidate pruned when no group hurts on its own
    second = [Scenario(f"g{ch}", keys) for ch, keys in keys_of.items() if len(keys) > 1]
    if second:
        measure(second, 1 / 3)
    index = {c.key: i for i, c in enumerate(candidates)}
    for ch, keys in keys_of.items():  # a lone writer's group is that candidate
        if len(keys) == 1:
            ppl[f"g{ch}"] = ppl[f"c{index[keys[0]]}"]
    third = [Scenario(f"w{g.channel}", zero_writes=tuple(sorted({(k[0], g.channel) for k in keys_of[g.channel]})))
             for g in groups if not hurts(f"g{g.channel}")]
    if len(groups) > 1 and not any(hurts(f"g{g.channel}") for g in groups):
        third.append(Scenario("all", tuple(c.key for c in candidates)))
    # 3. where pruning hurts: does restoring the super activation recover it?
    for i, c in enumerate(candidates):
        if hurts(f"c{i}"):
            third.append(Scenario(f"c{i}+sa", (c.key,), sa_restore=True))
    by_key = {c.key: c for c in candidates}
    for g in groups:  # a group with a super weight in it: that weight's own SA restore tells
        keys = keys_of[g.channel]
        if hurts(f"g{g.channel}") and len(keys) > 1 and not any(by_key[k].is_super for k in keys):
            third.append(Scenario(f"g{g.channel}+sa", keys, sa_restore=True))
    if hurts("all"):
        third.append(Scenario("all+sa", tuple(c.key for c in candidates), sa_restore=True))
    if third:
        measure(third, 2 / 3)

    for i, c in enumerate(candidates):
        c.ppl_sa_restored = ppl.get(f"c{i}+sa")
    for g in groups:
        members = [by_key[tuple(m)] for m in g.members]
        g.ppl_base = base
        g.ppl_pruned_together = ppl[f"g{g.channel}"]
        g.ppl_pruned_sa_restored = (members[0].ppl_sa_restored if len(members) == 1
                                    else ppl.get(f"g{g.channel}+sa"))
        g.ppl_write_zeroed = ppl.get(f"w{g.channel}")
        if any(m.is_super for m in members):
            g.verdict = SUPER
        elif hurts(f"g{g.channel}"):
            g.verdict = GROUP
        elif hurts(f"w{g.channel}"):
            g.verdict = ACTIVATION
        else:
            g.verdict = HARMLESS
        for m in members:
            if not m.is_super and g.verdict in (GROUP, ACTIVATION):
                m.verdict = g.verdict
    impact.ppl_all_pruned, impact.ppl_all_sa_restored = ppl.get("all"), ppl.get("all+sa")
    return impact


def evidence(c) -> str:
    """One line of evidence for a candidate's verdict."""
    parts = []
    if c.ppl_pruned is not None and c.ppl_base:
        parts.append(f"ppl ×{c.ppl_pruned / c.ppl_base:.3g} pruned")
    if c.ppl_sa_restored is not None and c.ppl_base:
        parts.append(f"×{c.ppl_sa_restored / c.ppl_base:.3g} with SA restored")
    if c.share is not None:
        parts.append(f"writes {c.share:.0%} of its spike")
    if c.prompts_total:
        parts.append(f"spikes on {c.prompts_spiking}/{c.prompts_total} prompts")
    return "; ".join(parts)
