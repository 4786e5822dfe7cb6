"""The protocol's payloads: the typed values its events carry (a probe's layer, a super weight's
row, a channel's writers and verdict; a model's description and measured metrics come from the
layers that make them, `model.info` and `evidence.records`, and are re-exported here). Plain frozen
dataclasses, no tensors, no torch; `swtui.core.engine.protocol` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swtui.core.detection.layer_stats import LayerStats
from swtui.core.evidence.stats import Ratio
from swtui.core.evidence.records import Metrics, StopwordReport, TokenShift  # noqa: F401 - the protocol carries them
from swtui.core.model.info import ModelInfo  # noqa: F401 - the protocol carries it
from swtui.core.verdicts import Verdict


@dataclass(frozen=True)
class LayerRow(LayerStats):
    """One decoder layer of a probe as the chart draws it: the probe's own record (`LayerStats`,
    every field of it, said once there) and the weight it points at as it is now."""
    weight: float | None = None  # W[out_channel, col] now (None where it cannot be read)

    @classmethod
    def of(cls, stats: LayerStats, weight: float | None) -> "LayerRow":
        return cls(**stats.to_dict(), weight=weight)


@dataclass(frozen=True)
class ArmRow:
    """One arm of a claim as measured (`plan.ArmResult`): what it did, its matched magnitude, its ratio
    at the look it stopped, how many looks, and why it stopped."""
    name: str
    what: str
    magnitude: float | None
    ratio: Ratio | None
    looks: int
    stopped: str


@dataclass(frozen=True)
class EvidenceRow:
    """One claim as measured (`plan.ClaimResult`): the treatment beside its controls and the outcome."""
    kind: str
    matched_on: str
    outcome: str | None
    small_effect: bool
    treatment: ArmRow
    controls: tuple[ArmRow, ...] = ()
    level: float | None = None  # each interval's coverage; together they hold at 95% (Bonferroni)

    @property
    def spread(self) -> ArmRow | None:
        """The worst control (largest ratio): what the treatment must exceed."""
        measured = [c for c in self.controls if c.ratio is not None]
        return max(measured, key=lambda c: c.ratio.value) if measured else None


@dataclass(frozen=True)
class SuperWeightRow:
    """One named super weight as the UI shows it: the finding plus its present state."""
    layer: int
    row: int
    col: int
    value: float  # the pristine weight
    current: float  # the weight now (edits, quantization)
    state: str  # "original", "pruned", "scaled ×2", "… + SA restored", "measuring…"
    pruned: bool = False
    sa_restored: bool = False
    measuring: bool = False  # detection is still measuring its impact
    label: str = ""
    source: str = "detected"
    verdict: Verdict | None = None
    is_super: bool | None = None
    ppl_base: float | None = None
    ppl_pruned: float | None = None
    zscore: float | None = None
    share: float | None = None
    prompts_spiking: int | None = None
    prompts_total: int | None = None
    ratio: Ratio | None = None  # ppl pruned alone / base, with its 95% interval
    control: Ratio | None = None  # the worst of its controls (matched on |x·w|), pruned
    control_key: tuple[int, ...] | None = None
    sa_ratio: Ratio | None = None  # pruned with its super activation restored
    role: str | None = None  # "carrier" | "canceller" of a massive channel (None: not one of its writers)
    expert: int | None = None  # fused experts: the expert whose down projection holds it
    contribution: float | None = None  # |x·w| on the probe, what its controls are matched on
    small_effect: bool | None = None  # below threshold, but the interval excludes 1
    evidence: EvidenceRow | None = None  # its claim: every control with its magnitude, looks, tokens
    provisional: Verdict | None = None  # its treatment decided, its controls still measured (not a verdict yet)

    @property
    def key(self) -> tuple[int, ...]:
        """(layer, row, col), or (layer, row, col, expert) in fused experts."""
        return (self.layer, self.row, self.col) + (() if self.expert is None else (self.expert,))


@dataclass(frozen=True)
class WriterRow:
    """One MLP writing a massive channel: its signed share of the peak and its main weight."""
    layer: int
    row: int
    col: int | None  # None: the weight cannot be read (packed)
    share: float  # write / peak: > 0 carries the activation, < 0 cancels it
    role: str  # "carrier" | "canceller"


@dataclass(frozen=True)
class GroupRow:
    """One residual channel judged (`groups.WriterGroup`): a massive one with its writers, or the
    row of candidates."""
    channel: int
    members: list[tuple[int, int, int]]
    first_layer: int
    sa_before: float  # max |residual| on the channel from the first layer on
    sa_after: float  # the same with every carrier pruned
    sa_remaining: float  # sa_after / sa_before
    verdict: Verdict
    ppl_base: float | None = None
    ppl_pruned_together: float | None = None
    ppl_pruned_sa_restored: float | None = None
    ppl_write_zeroed: float | None = None
    massive: bool = False
    peak: float | None = None  # signed residual value at the peak (massive channels)
    persist_layers: int | None = None
    writers: list[WriterRow] = field(default_factory=list)
    carriers: list[tuple[int, int, int]] = field(default_factory=list)
    pruned_together: Ratio | None = None
    together_control: Ratio | None = None  # the carriers' control weights pruned together
    sa_restored: Ratio | None = None  # the carriers pruned with their super activations restored
    write_zeroed: Ratio | None = None  # the channel's MLP writes zeroed at every token, all layers
    control: Ratio | None = None  # the worst energy-matched channel zeroed at its massive positions
    control_channel: int | None = None
    positions_zeroed: Ratio | None = None  # its MLP writes zeroed at its massive positions, all layers
    write_control: Ratio | None = None  # the worst energy-matched channel zeroed at every token
    evidence: tuple[EvidenceRow, ...] = ()  # its claims: carriers together, massive positions, every token
