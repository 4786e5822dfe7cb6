"""The engine's protocol: requests to the inference thread and the events it emits.

Plain frozen dataclasses with typed fields, no tensors: the TUI wraps each event in a Textual
message, tests collect them, and `swtui.core.wire` turns any of them into JSON-able dicts and
back (recorded sessions replay through a fake engine that way). Every request has a `kind`; the
engine's cancellation policy is written in kinds (`SUPERSEDES`, `CANCELLABLE`, below).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from swtui.core.evidence import Ratio  # noqa: F401 - a payload type (wire resolves hints here)
from swtui.core.source_quant import SourceQuant, TensorTypeShare  # noqa: F401 - payload types


# -- payloads ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """The one description of a loaded model: the status bar, `--json` reports and snapshots all
    read it (`Session.info()` builds it)."""
    name: str
    source: str
    kind: str  # "gguf" | "dir" | "hub" | "tiny"
    arch: str
    layers: int
    params: int
    device: str
    dtype: str
    revision: str | None
    file_sha256: str | None
    source_quant: SourceQuant  # how the source stored its weights (GGUF Q4_1, a bnb checkpoint, float)

    def to_json(self) -> dict:
        from swtui.core.source_quant import to_json

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["source_quant"] = to_json(self.source_quant)
        return out


@dataclass(frozen=True)
class LayerRow:
    """One decoder layer of a probe, as the chart draws it (`probe.LayerStats` and the weight)."""
    layer: int
    in_max: float  # max |down_proj input| and where: channel → the super weight's col
    in_channel: int
    in_token: int
    out_max: float  # max |down_proj output| and where: channel → the super weight's row
    out_channel: int
    out_token: int
    out_value: float
    resid_max: float  # max |residual stream| after the layer
    resid_channel: int
    attr_col: int | None = None
    attr_share: float | None = None
    write_value: float | None = None
    norm_gain: float | None = None
    weight: float | None = None  # W[out_channel, in_channel] now (None where it cannot be read)
    # fused experts: the expert whose output spiked (the figures are the max over the routed experts)
    # and per routed expert [expert, tokens routed, max |out|, out channel, out token, max |in|, col]
    expert: int | None = None
    experts: list | None = None


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
    verdict: str | None = None
    is_super: bool | None = None
    ppl_base: float | None = None
    ppl_pruned: float | None = None
    zscore: float | None = None
    share: float | None = None
    prompts_spiking: int | None = None
    prompts_total: int | None = None
    ratio: Ratio | None = None  # ppl pruned alone / base, with its 95% interval
    control: Ratio | None = None  # a random weight of matched magnitude in the same tensor, pruned
    control_key: tuple[int, int, int] | None = None
    sa_ratio: Ratio | None = None  # pruned with its super activation restored
    role: str | None = None  # "carrier" | "canceller" of a massive channel (None: not one of its writers)
    expert: int | None = None  # fused experts: the expert whose down projection holds it

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
    verdict: str
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
    write_zeroed: Ratio | None = None  # the channel's MLP writes zeroed at every layer
    control: Ratio | None = None  # a random other channel zeroed the same way
    control_channel: int | None = None


@dataclass(frozen=True)
class Metrics:
    """What one variant of the model does: perplexity on the evaluation text, stopword mass on the
    stopword prompts and (when asked) a greedy generation. Made by `swtui.core.metrics.measure`."""
    perplexity: float
    stopword_mass: float
    generation: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    factor: object


@dataclass(frozen=True)
class Restore(Request):
    key: tuple[int, ...]  # (layer, row, col[, expert])


@dataclass(frozen=True)
class RestoreAll(Request):
    pass


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
    config: dict | None  # None: back to full precision


@dataclass(frozen=True)
class Compare(Request):
    """Measure the baseline and each variant (`variants.Variant` dicts), one after the other."""
    kind: ClassVar[str] = "compare"
    variants: tuple


@dataclass(frozen=True)
class Sweep(Request):
    """what "scale": W[key] scaled by each factor; what "quant": naive vs SW-aware RTN by block."""
    kind: ClassVar[str] = "sweep"
    what: str
    key: tuple | None = None
    factors: tuple = (0.0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0)
    bits: int = 4
    blocks: tuple = (64, 256, 1024, 4096, 16384, None)
    clip_z: float = 9.0


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


@dataclass(frozen=True)
class TokenStreamed(Event):
    variant: str
    text: str


@dataclass(frozen=True)
class GenerationDone(Event):
    texts: dict
    diverge_at: int | None
    batched: bool
    cancelled: bool = False


@dataclass(frozen=True)
class StopwordsDone(Event):
    report: dict  # metrics.StopwordReport.to_dict()


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
    variants: list  # Variant dicts
    results: dict  # name -> Metrics dict (the baseline first)
    cancelled: bool = False


@dataclass(frozen=True)
class SweepRow(Event):
    what: str
    row: dict


@dataclass(frozen=True)
class SweepDone(Event):
    what: str
    rows: list
    meta: dict  # what was swept: the weight and its value, or bits and clip z
    cancelled: bool = False
