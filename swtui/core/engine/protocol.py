"""The engine's protocol: requests to the inference thread and the events it emits.

Plain frozen dataclasses with typed fields, no tensors: the TUI wraps each event in a Textual
message, tests collect them, and `swtui.core.engine.wire` turns any of them into JSON-able dicts and
back (recorded sessions replay through a fake engine that way). Every request has a `kind`; the
engine's cancellation policy is written in kinds (`SUPERSEDES`, `CANCELLABLE`, below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

# every payload type is a name of this module: `wire` resolves the messages' type hints here
from swtui.core.defaults import CLIP_Z, PAPER_BITS, SCALE_FACTORS, SWEEP_BLOCKS
from swtui.core.evidence.stats import Difference, Ratio  # noqa: F401
from swtui.core.engine.payloads import (ArmRow, EvidenceRow, GroupRow, LayerRow, Metrics, ModelInfo, StopwordReport,  # noqa: F401
                                 SuperWeightRow, TokenShift, WriterRow)
from swtui.core.quant.config import QuantConfig, Variant  # noqa: F401
from swtui.core.model.source_quant import SourceQuant, TensorTypeShare  # noqa: F401
from swtui.core.evidence.sweep_rows import QuantMeta, QuantRow, ScaleMeta, ScaleRow  # noqa: F401
from swtui.core.verdicts import Verdict  # noqa: F401


# -- requests (UI -> inference thread) -------------------------------------------------------
@dataclass(frozen=True)
class Request:
    kind: ClassVar[str] = "edit"  # refresh | detect | edit | quantize | compare | sweep | export | call | stop


@dataclass(frozen=True)
class Detect(Request):
    kind: ClassVar[str] = "detect"
    prompt: str | None = None


@dataclass(frozen=True)
class Refresh(Request):
    """Probe, generate and measure (stopwords, perplexity) the current state."""
    kind: ClassVar[str] = "refresh"
    generate: bool = True


@dataclass(frozen=True)
class SetPrompt(Request):
    prompt: str


@dataclass(frozen=True)
class NameSpike(Request):
    layer: int
    row: int
    col: int
    label: str = ""
    expert: int | None = None  # fused experts: the expert whose down projection holds it


@dataclass(frozen=True)
class Prune(Request):
    key: tuple[int, ...]  # (layer, row, col[, expert])
    on: bool = True  # False: unprune (restore)


@dataclass(frozen=True)
class Scale(Request):
    key: tuple[int, ...]  # (layer, row, col[, expert])
    factor: float  # finite, |factor| ≤ 1e6 (`edits.check_factor`, in the ledger)


@dataclass(frozen=True)
class Restore(Request):
    key: tuple[int, ...]  # (layer, row, col[, expert])


@dataclass(frozen=True)
class RestoreAll(Request):
    pass


@dataclass(frozen=True)
class PruneFindings(Request):
    """Prune every weight detection judged a super weight or a group member, at once (the paper's
    "remove the super weights" of a model with several); again, when all are pruned: restore them."""


@dataclass(frozen=True)
class ToggleSA(Request):
    key: tuple[int, ...]  # (layer, row, col[, expert])


@dataclass(frozen=True)
class ToggleWriteAblation(Request):
    """Zero the MLP's write on residual channel `channel` at `layer` (edited variant); when `layer`
    already has a zeroed write, undo that instead (the spike may have moved to another channel)."""
    layer: int
    channel: int


@dataclass(frozen=True)
class Quantize(Request):
    kind: ClassVar[str] = "quantize"
    config: QuantConfig | None  # None: back to full precision


@dataclass(frozen=True)
class Compare(Request):
    """Measure the baseline and each variant, one after the other."""
    kind: ClassVar[str] = "compare"
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Sweep(Request):
    """what "scale": W[key] scaled by each factor; what "quant": naive vs SW-aware RTN by block."""
    kind: ClassVar[str] = "sweep"
    what: str
    key: tuple[int, int, int] | None = None
    factors: tuple[float, ...] = SCALE_FACTORS
    bits: int = PAPER_BITS  # the TUI asks for one below a source already at ≤ 4 bits (SourceQuant.default_bits)
    blocks: tuple[int | None, ...] = SWEEP_BLOCKS
    clip_z: float = CLIP_Z


@dataclass(frozen=True)
class Export(Request):
    kind: ClassVar[str] = "export"
    out_dir: str
    svg: str | None = None  # screenshot provided by the UI


@dataclass(frozen=True)
class ApplySnapshot(Request):
    """Re-apply the snapshot the engine was started with; `force` opens it despite a hash mismatch."""
    force: bool = False


@dataclass(frozen=True)
class Call(Request):
    """Run fn(session) in the inference thread (tests, fault injection, extensions)."""
    kind: ClassVar[str] = "call"
    fn: object
    refresh: bool = False


@dataclass(frozen=True)
class Stop(Request):
    kind: ClassVar[str] = "stop"


# -- what a request does to work already there ---------------------------------------------
#: request kind -> the kinds of work it makes stale: running work of those kinds is cancelled and
#: queued requests of those kinds are dropped (a refresh then follows the new request anyway)
SUPERSEDES: dict[str, frozenset[str]] = {
    "refresh": frozenset({"refresh"}),
    "edit": frozenset({"refresh"}),
    "detect": frozenset({"refresh"}),
    "quantize": frozenset({"refresh"}),
    "compare": frozenset({"refresh"}),
    "sweep": frozenset({"refresh"}),
    "call": frozenset({"refresh"}),
    "export": frozenset(),  # exports what the last refresh showed: let it finish
    "stop": frozenset({"refresh", "detect", "edit", "quantize", "compare", "sweep", "call", "export"}),
}
#: what esc (`cancel()`) stops when running and drops when queued; edits and quantizations queued
#: behind it still apply (a running quantization stops all-or-nothing)
CANCELLABLE = frozenset({"refresh", "detect", "compare", "sweep"})


#: what the status bar says the engine is doing, by request
LABELS = {"Detect": "detecting", "Refresh": "refresh", "Quantize": "quantizing", "Compare": "comparing",
          "Sweep": "sweeping", "Export": "exporting", "ApplySnapshot": "opening the snapshot"}


# -- events (inference thread -> UI) -------------------------------------------------------
@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class Progress(Event):
    stage: str
    fraction: float | None = None


@dataclass(frozen=True)
class Busy(Event):
    busy: bool
    what: str = ""


@dataclass(frozen=True)
class Loaded(Event):
    info: ModelInfo


@dataclass(frozen=True)
class ProbeDone(Event):
    layers: list[LayerRow]
    threshold: float
    tokens: list[str]
    prompt: str


@dataclass(frozen=True)
class DetectionDone(Event):
    candidates: list[tuple[int, ...]]  # in the order found; (layer, row, col[, expert])
    supers: list[tuple[int, ...]]  # those not judged harmless (their figures: StateChanged's rows)
    stop_reason: str
    groups: list[GroupRow] = field(default_factory=list)
    impact_threshold: float | None = None  # what the verdicts' intervals were compared with
    eval_tokens: int | None = None  # the tokens each interval rests on


@dataclass(frozen=True)
class StateChanged(Event):
    super_weights: list[SuperWeightRow]
    edit_count: int
    quant_mode: str
    batched_ab: bool
    prompt: str
    held_out: tuple[tuple[int, ...], ...]  # what "keep super weights" holds out now (quant.session.held_out_keys)


@dataclass(frozen=True)
class TokenStreamed(Event):
    variant: str
    text: str


@dataclass(frozen=True)
class GenerationDone(Event):
    texts: dict[str, str]  # "base", "current"
    diverge_at: int | None
    batched: bool
    cancelled: bool = False


@dataclass(frozen=True)
class StopwordsDone(Event):
    report: StopwordReport


@dataclass(frozen=True)
class Measured(Event):
    """The refresh's last step: base and current measured (perplexity, stopwords, generation)."""
    metrics: dict[str, Metrics]  # "base", "current"


@dataclass(frozen=True)
class Failed(Event):
    title: str
    message: str


@dataclass(frozen=True)
class Notice(Event):
    message: str


@dataclass(frozen=True)
class Exported(Event):
    path: str


@dataclass(frozen=True)
class VariantToken(Event):
    name: str  # "baseline" or a variant's name
    text: str


@dataclass(frozen=True)
class VariantMeasured(Event):
    name: str
    metrics: Metrics


@dataclass(frozen=True)
class ComparisonDone(Event):
    variants: tuple[Variant, ...]
    results: dict[str, Metrics]  # "baseline" first, then each variant measured
    cancelled: bool = False


@dataclass(frozen=True)
class SweepRow(Event):
    what: str
    row: ScaleRow | QuantRow


@dataclass(frozen=True)
class SweepDone(Event):
    what: str
    rows: tuple[ScaleRow | QuantRow, ...]
    meta: ScaleMeta | QuantMeta  # what was swept: the weight and its value, or bits, clip z, held-out set
    cancelled: bool = False
