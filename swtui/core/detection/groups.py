"""The residual channels a scan studies: each massive channel (with its writers) and each other
row the candidates write, with the activation left when its carriers are pruned. The impact
check (`swtui.core.detection.impact`) judges them; `evidence(c)` writes one candidate's evidence in a line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from swtui.core.evidence.stats import Ratio
from swtui.core.edits.hooks import HookSet, _first_tensor
from swtui.core.edits.session import Session
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

    install, result = _channel_hooks(session, channel, from_layer)
    ids = session.encode(prompt)
    (names, ctx), = session.variant_runs(("current",))
    with ctx, install(), torch.no_grad():
        session.model(input_ids=ids, use_cache=False)
    return result()


def _channel_hooks(session: Session, channel: int, from_layer: int):
    """(install, result): hooks that see |h[..., channel]| from `from_layer` on, and its max."""
    import contextlib

    import torch

    seen: list = []

    def hook(module, args, output):
        seen.append(_first_tensor(output)[..., channel].abs().max())

    @contextlib.contextmanager
    def install():
        with HookSet() as hooks:
            for site in session.adapter.sites[from_layer:]:
                hooks.add(site.layer.register_forward_hook(hook))
            yield
    return install, lambda: float(torch.stack(seen).max())


def channel_maxes(session: Session, prompt: str, asks: list) -> list[tuple[float, float | None]]:
    """[(before, after)] for each (channel, from_layer, keys) of `asks`: `residual_channel_max` on the
    current state, then with `keys` pruned (None without keys). In memory, two forwards each; on a
    streamed model, every one of them a job of one layer-major pass (the prunes through the ledger,
    re-applied to the live layer: the same values)."""
    if not session.streamed:
        out = []
        for channel, first, keys in asks:
            before = residual_channel_max(session, prompt, channel, first)
            with _pruned(session, keys):
                out.append((before, residual_channel_max(session, prompt, channel, first) if keys else None))
        return out
    import contextlib

    from swtui.core.evidence.lockstep import Job, run_pass

    ids = session.encode(prompt)
    jobs, results = [], []
    for channel, first, keys in asks:
        for pruned in ((), tuple(keys)) if keys else ((),):
            install, result = _channel_hooks(session, channel, first)

            @contextlib.contextmanager
            def context(install=install, pruned=pruned):
                with _pruned(session, pruned):
                    (_, ctx), = session.variant_runs(("current",))
                    with ctx, install():
                        yield

            jobs.append(Job(ids, 0, None, context, lambda results: None, lambda s, batch: []))
            results.append(result)
    run_pass(session, jobs)
    values = iter(results)
    out = []
    for _, _, keys in asks:
        before = next(values)()
        out.append((before, next(values)() if keys else None))
    return out


class _pruned:
    """`keys` pruned through the ledger for the duration (put back after, in reverse)."""

    def __init__(self, session: Session, keys) -> None:
        self.ledger, self.keys = session.ledger, list(keys)

    def __enter__(self):
        for key in self.keys:
            self.ledger.prune(*key)

    def __exit__(self, *exc) -> None:
        for key in reversed(self.keys):
            self.ledger.restore(*key)


def writer_groups(session: Session, candidates, prompt: str, channels=()) -> list[WriterGroup]:
    """One WriterGroup per massive channel and per other channel the candidates write, with the
    activation left after pruning its carriers (no perplexity). A candidate that a massive channel's
    writers list as a canceller is a member but not a carrier."""
    by_channel: dict[int, list] = {}
    for cand in candidates:
        by_channel.setdefault(cand.row, []).append(cand)
    massive = {m.channel: m for m in channels}
    groups, asks = [], []
    for channel in sorted(set(by_channel) | set(massive), key=lambda c: (c not in massive, c)):
        members = by_channel.get(channel, [])
        m = massive.get(channel)
        cancel_keys = {w.key for w in m.cancellers} if m else set()
        carriers = [list(c.key) for c in members if c.key not in cancel_keys]
        first = m.first_layer if m else min(c.layer for c in members)
        groups.append(WriterGroup(channel, [list(c.key) for c in members], first, sa_before=0.0, sa_after=0.0,
                                  massive=m.to_dict() if m else None, carriers=carriers))
        asks.append((channel, first, [tuple(k) for k in carriers if session.ledger.edit(tuple(k)) is None]))
    for group, (before, after) in zip(groups, channel_maxes(session, prompt, asks)):  # streamed: one pass
        group.sa_before, group.sa_after = before, before if after is None else after
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
