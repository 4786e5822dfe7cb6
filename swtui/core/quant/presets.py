"""The quantization presets the inspector offers, and the paper's pair it compares by default,
written once at the bits that mean something on the model's source (`SourceQuant.default_bits`:
the paper's W4, or one bit below a source already at ≤ 4 bits). No torch."""

from __future__ import annotations

from swtui.core.defaults import CLIP_Z
from swtui.core.quant.config import QuantConfig, Variant


def paper_pair(bits: int) -> list[Variant]:
    """Naive vs clip z9 + keep SW, at the same bits and grouping (per tensor)."""
    return [Variant(f"W{bits} per tensor, naive", QuantConfig(bits=bits, group="tensor")),
            Variant(f"W{bits} per tensor, clip z{CLIP_Z:g} + keep SW",
                    QuantConfig(bits=bits, group="tensor", clip_z=CLIP_Z, keep_super_weights=True))]


def presets(bits: int) -> list[tuple[str, QuantConfig | None]]:
    """(label, config) of the quantization dialog; None is full precision."""
    return [(label, None if not cfg else QuantConfig(**cfg)) for label, cfg in _presets(bits)]


def _presets(bits: int) -> list[tuple[str, dict]]:
    z = f"clip z{CLIP_Z:g}"
    return [
        ("Full precision (exact restore)", {}),
        (f"RTN W{bits}, 1-D blocks of 4096", {"method": "rtn", "bits": bits, "group": "block", "block": 4096}),
        (f"RTN W{bits}, blocks of 4096, {z} + keep SW",
         {"method": "rtn", "bits": bits, "group": "block", "block": 4096, "clip_z": CLIP_Z, "keep_super_weights": True}),
        (f"RTN W{bits}, per tensor", {"method": "rtn", "bits": bits, "group": "tensor"}),
        (f"RTN W{bits}, per tensor, {z} + keep SW",
         {"method": "rtn", "bits": bits, "group": "tensor", "clip_z": CLIP_Z, "keep_super_weights": True}),
        ("RTN W8 + A8 (naive)", {"method": "rtn", "bits": 8, "group": "channel", "act_bits": 8}),
        ("RTN W8 + A8, SW and SA held out",
         {"method": "rtn", "bits": 8, "group": "channel", "act_bits": 8, "act_sa": True, "keep_super_weights": True}),
        ("bitsandbytes LLM.int8", {"method": "bnb-int8"}),
        ("bitsandbytes NF4", {"method": "bnb-nf4"}),
        ("bitsandbytes NF4 + keep SW (activation hook)", {"method": "bnb-nf4", "keep_super_weights": True}),
        ("bitsandbytes FP4", {"method": "bnb-fp4"}),
    ]
