"""The residual channels a scan studies: each massive channel (with its writers) and each other
row the candidates write, with the activation left when its carriers are pruned. The impact
check (`swtui.core.impact`) judges them; `evidence(c)` writes one candidate's evidence in a line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from swtui.core.evidence import Ratio
from swtui.core.hooks import HookSet, _first_tensor
from swtui.core.session import Session
from swtui.core.verdicts import BELOW


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
    verdict: str = BELOW
    massive: dict | None = None  # channels.MassiveChannel.to_dict() (writers, peak, persistence)
    carriers: list[list[int]] = field(default_factory=list)  # the members that carry the activation
    pruned_together: Ratio | None = None
    write_zeroed: Ratio | None = None  # the channel's MLP writes zeroed at every token, all layers
    control: Ratio | None = None  # the worst energy-matched control channel zeroed at the massive positions
    control_channel: int | None = None  # that control channel
    positions_zeroed: Ratio | None = None  # the writes zeroed at the massive positions only, all layers
    write_control: Ratio | None = None  # the worst control channel zeroed at every token
    evidence: dict | None = None  # the claims as measured (plan.ClaimResult.to_json): together, positions, all_tokens
    sa_restored: Ratio | None = None  # the carriers pruned with their super activations restored
    together_control: Ratio | None = None  # the carriers' control weights pruned together
    positions_share: float | None = None  # the share of token positions the massive-positions arm zeroed
    together_note: str | None = None  # why the carriers were not pruned together (e.g. one alone is a super weight)

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


def evidence(c) -> str:
    """One line of evidence for a candidate's verdict."""
    parts = []
    if c.ratio is not None:
        parts.append(f"ppl {c.ratio.text()} pruned")
    if c.control is not None:
        n = len((c.evidence or {}).get("controls", [])) or 1
        parts.append(f"worst of {n} controls {c.control.text()}" if n > 1 else f"control {c.control.text()}")
    if c.sa_ratio is not None:
        parts.append(f"{c.sa_ratio.text()} with SA restored")
    if c.role:
        parts.append(f"a {c.role} of its channel")
    if c.share is not None:
        parts.append(f"writes {c.share:.0%} of its spike")
    if c.prompts_total:
        parts.append(f"spikes on {c.prompts_spiking}/{c.prompts_total} prompts")
    return "; ".join(parts)
