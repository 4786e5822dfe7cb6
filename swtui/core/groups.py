"""Candidates judged together: the weights that write the same residual channel, as one group.

One weight alone can look harmless while a group of writers carries the massive activation (or
one writer is the super weight and the rest are its echoes). For every residual channel that
more than one candidate writes, this prunes the whole group and reports what is left of the
activation on that channel downstream of the writers (max |h[..., channel]| over the layers from
the first writer on, before and after) and, when impact is measured, the perplexity with the
group pruned. Verdicts: "super weight" (a member alone hurts), "super weight group" (only the
group hurts), "harmless".
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

from swtui.core.errors import Cancelled
from swtui.core.hooks import HookSet, _first_tensor
from swtui.core.session import Session


@dataclass
class WriterGroup:
    channel: int
    members: list[list[int]]  # [[layer, row, col], ...]
    first_layer: int
    sa_before: float  # max |residual[..., channel]| from first_layer on, untouched model
    sa_after: float  # the same with every member pruned
    ppl_base: float | None = None
    ppl_pruned_together: float | None = None
    verdict: str = "harmless"

    @property
    def sa_remaining(self) -> float:
        return self.sa_after / self.sa_before if self.sa_before else 0.0

    def to_dict(self) -> dict:
        return dict(asdict(self), sa_remaining=self.sa_remaining)


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


def judge_groups(session: Session, candidates, prompt: str, impact_threshold: float | None,
                 cancel: threading.Event | None = None) -> list[WriterGroup]:
    """One WriterGroup per residual channel written by two or more candidates."""
    from swtui.core.metrics import perplexity

    by_channel: dict[int, list] = {}
    for cand in candidates:
        by_channel.setdefault(cand.row, []).append(cand)
    groups = []
    base = None
    for channel, members in sorted(by_channel.items()):
        if len(members) < 2:
            continue
        if cancel is not None and cancel.is_set():
            raise Cancelled("detection cancelled")
        first = min(m.layer for m in members)
        group = WriterGroup(channel, [list(m.key) for m in members], first,
                            sa_before=residual_channel_max(session, prompt, channel, first), sa_after=0.0)
        for m in members:
            session.ledger.prune(*m.key)
        try:
            group.sa_after = residual_channel_max(session, prompt, channel, first)
            if impact_threshold is not None:
                group.ppl_pruned_together = perplexity(session, variants=("current",))["current"]
        finally:
            for m in members:
                session.ledger.restore(*m.key)
        if impact_threshold is not None:
            base = base if base is not None else members[0].ppl_base or perplexity(
                session, variants=("current",))["current"]
            group.ppl_base = base
            if any(m.is_super for m in members):
                group.verdict = "super weight"
            elif group.ppl_pruned_together / base >= impact_threshold:
                group.verdict = "super weight group"
        groups.append(group)
    return groups
