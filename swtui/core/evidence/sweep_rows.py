"""What a sweep measures, one typed row at a time, and what it swept: the same values in the
engine's events, the CLI's tables and `--json`, the TUI's sweep screen and snapshots (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from swtui.core.evidence.stats import Ratio, fields
from swtui.core.model.source_quant import SourceQuant, to_json as source_json


@dataclass(frozen=True)
class ScaleRow:
    """The model with one super weight scaled by `factor` (0 = pruned), against ×1 on the same tokens."""
    factor: float
    perplexity: float
    ratio: Ratio  # ppl(×factor) / ppl(×1), paired, with its interval
    stopword_mass: float

    def to_json(self) -> dict:
        return {"factor": self.factor, "perplexity": self.perplexity, **fields("ratio", self.ratio),
                "stopword_mass": self.stopword_mass, "eval_tokens": self.ratio.tokens}


@dataclass(frozen=True)
class QuantRow:
    """W`bits` RTN at one block size, four ways (perplexities), and the paper's comparison as
    paired ratios against naive RTN on the same tokens (< 1: holding outliers out helps)."""
    block: int | None  # None: one group per tensor
    naive: float
    keep_sw: float  # the super weights held out of min/max and restored
    clip: float  # |W| clipped at z before RTN
    sw_aware: float  # clip, RTN, restore the super weights (the paper's)
    sw_aware_vs_naive: Ratio
    keep_sw_vs_naive: Ratio
    confound: str | None  # why the source's own grid confounds this row (None: it does not)

    @property
    def label(self) -> str:
        return "tensor" if self.block is None else str(self.block)

    def to_json(self) -> dict:
        return {"block": self.label, "naive": self.naive, "keep_sw": self.keep_sw, "clip": self.clip,
                "sw_aware": self.sw_aware, **fields("sw_aware_vs_naive", self.sw_aware_vs_naive),
                **fields("keep_sw_vs_naive", self.keep_sw_vs_naive), "eval_tokens": self.sw_aware_vs_naive.tokens,
                "confound": self.confound}


@dataclass(frozen=True)
class ScaleMeta:
    """What a scale sweep swept: one weight and its pristine value."""
    super_weight: tuple[int, int, int]
    value: float

    def to_json(self) -> dict:
        return {"super_weight": list(self.super_weight), "value": self.value}


@dataclass(frozen=True)
class QuantMeta:
    """What a block sweep swept: bits, clip z, the weights "keep SW" held out, the source's grid."""
    bits: int
    clip_z: float
    held_out: tuple[tuple[int, int, int], ...]
    baseline_perplexity: float
    source: SourceQuant
    confound: str | None  # the sweep's bits against the source's (per tensor: the least aligned case)

    def to_json(self) -> dict:
        held = [list(k) for k in self.held_out]
        return {"bits": self.bits, "clip_z": self.clip_z, "super_weights": held, "held_out": held,
                "baseline_perplexity": self.baseline_perplexity, "source_quant": source_json(self.source),
                "confound": self.confound}
