"""Requests to the inference thread and the events it emits: plain data, no tensors.

The TUI wraps each event in a Textual message; tests can collect them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


# -- requests (UI -> inference thread) -------------------------------------------------------
@dataclass(frozen=True)
class Request:
    pass


@dataclass(frozen=True)
class Detect(Request):
    prompt: str | None = None


@dataclass(frozen=True)
class Refresh(Request):
    """Probe, generate and measure stopwords for the current state."""
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


@dataclass(frozen=True)
class Prune(Request):
    key: tuple[int, int, int]
    on: bool = True  # False: unprune (restore)


@dataclass(frozen=True)
class Scale(Request):
    key: tuple[int, int, int]
    factor: object


@dataclass(frozen=True)
class Restore(Request):
    key: tuple[int, int, int]


@dataclass(frozen=True)
class RestoreAll(Request):
    pass


@dataclass(frozen=True)
class ToggleSA(Request):
    key: tuple[int, int, int]


@dataclass(frozen=True)
class ToggleWriteAblation(Request):
    """Zero the MLP's write on residual channel `channel` at `layer` (edited variant); when `layer`
    already has a zeroed write, undo that instead (the spike may have moved to another channel)."""
    layer: int
    channel: int


@dataclass(frozen=True)
class Quantize(Request):
    config: dict | None  # None: back to full precision


@dataclass(frozen=True)
class Compare(Request):
    """Measure the baseline and each variant (`variants.Variant` dicts), one after the other."""
    variants: tuple


@dataclass(frozen=True)
class Sweep(Request):
    """kind "scale": W[key] scaled by each factor; kind "quant": naive vs SW-aware RTN by block."""
    kind: str
    key: tuple | None = None
    factors: tuple = (0.0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0)
    bits: int = 4
    blocks: tuple = (64, 256, 1024, 4096, 16384, None)
    clip_z: float = 9.0


@dataclass(frozen=True)
class Export(Request):
    out_dir: str
    svg: str | None = None  # screenshot provided by the UI


@dataclass(frozen=True)
class Call(Request):
    """Run fn(session) in the inference thread (tests, fault injection, extensions)."""
    fn: object
    refresh: bool = False


@dataclass(frozen=True)
class Stop(Request):
    pass


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
    info: dict


@dataclass(frozen=True)
class ProbeDone(Event):
    layers: list[dict]
    threshold: float
    tokens: list[str]
    prompt: str


@dataclass(frozen=True)
class DetectionDone(Event):
    candidates: list[dict]
    stop_reason: str
    groups: list[dict] = field(default_factory=list)  # writers of one residual channel, judged together


@dataclass(frozen=True)
class StateChanged(Event):
    super_weights: list[dict]
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
    report: dict
    perplexity: dict = field(default_factory=dict)


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
    metrics: dict  # variants.Metrics as a dict


@dataclass(frozen=True)
class ComparisonDone(Event):
    variants: list  # Variant dicts
    results: dict  # name -> Metrics dict (the baseline first)
    cancelled: bool = False


@dataclass(frozen=True)
class SweepRow(Event):
    kind: str
    row: dict


@dataclass(frozen=True)
class SweepDone(Event):
    kind: str
    rows: list
    meta: dict  # what was swept: the weight and its value, or bits and clip z
    cancelled: bool = False
