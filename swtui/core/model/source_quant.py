"""The source's own quantization: what grid the weights already sat on before swtui loaded them.

A GGUF file stores most tensors quantized (Q4_1: blocks of 32 weights on a 16-level grid with a
scale and a minimum); swtui dequantizes them to float on load, so every weight still lies on
that grid. A quantization experiment on such a source measures the source's grid as much as the
method: W4 round-to-nearest with blocks of 32 on a Q4_1 source reproduces the source exactly.
Hugging Face checkpoints say theirs in `config.json` (`quantization_config`: bitsandbytes, GPTQ,
AWQ, …). Read once at load, carried as one typed value everywhere a model is described.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

#: tensors whose name holds one of these are the down projections (GGUF and HF spellings)
_DOWN = ("ffn_down", "down_proj", "w2.weight")


@dataclass(frozen=True)
class TensorTypeShare:
    """One storage type of the source and how many weights it holds."""
    type: str  # "Q4_1", "Q8_0", "F32", "int4", …
    weights: int


@dataclass(frozen=True)
class SourceQuant:
    """How the source stored its weights. `down_type` is the down projections' type (what a super
    weight sits on); `bits`/`block` the coarsest grid among the source's quantized tensors (RTN
    quantizes every decoder linear, so the coarsest one decides what an experiment measures);
    None where the source gives none (a float checkpoint)."""
    format: str  # "gguf" | "bitsandbytes" | "gptq" | "awq" | … | "float"
    down_type: str  # the down projections' type: "Q4_1", "nf4", "int4", "F16", …
    bits: int | None = None  # levels = 2**bits per block; None: not quantized
    block: int | None = None  # weights per scale on the source's grid (32 for Q4_1)
    types: tuple[TensorTypeShare, ...] = ()  # every tensor type in the source, most weights first

    @property
    def quantized(self) -> bool:
        return self.bits is not None

    @property
    def grid_type(self) -> str:
        """The type whose grid `bits`/`block` describe (the down projections' where they are it)."""
        if self.format != "gguf" or _gguf_bits(self.down_type) == self.bits:
            return self.down_type
        return next((t.type for t in self.types if _gguf_bits(t.type) == self.bits), self.down_type)

    def _what(self) -> str:
        grid = self.grid_type
        where = self.down_type if grid == self.down_type else f"{grid} (down projections {self.down_type})"
        return f"{where}, {self.bits}-bit, blocks of {self.block}"

    def label(self) -> str:
        """Short form: 'Q4_1 (gguf, 4-bit, block 32)', 'nf4 (bitsandbytes, …)', 'float source'."""
        if not self.quantized:
            return "float source" if self.format == "float" else f"{self.down_type} ({self.format})"
        return f"{self._what()} ({self.format})"

    def confound(self, bits: int, block: int | None) -> str | None:
        """Why an RTN experiment at `bits` over `block` (None: per tensor) on this source is not
        the paper's experiment (which quantizes float weights), or None when it quantizes for
        real: below the source's bits every block loses levels the source had."""
        if not self.quantized or bits < (self.bits or 0):
            return None
        src = f"the source is already {self._what()}"
        # only an asymmetric min/max grid (Q4_1, Q5_1) at its own bits and block is met exactly by
        # asymmetric RTN: a smaller block's min/max, a symmetric or non-uniform grid, or more
        # levels re-round every weight (checked against gguf's own quantizers)
        if bits == self.bits and block == self.block and self.grid_type.endswith("_1"):
            return f"{src}: naive W{bits} in blocks of {block} reproduces its grid, nothing is quantized"
        return f"{src}: W{bits} has no fewer levels, so errors compound with the source's grid"

    def default_bits(self, paper_bits: int = 4) -> int:
        """The paper's W4, or one bit below a source that already has ≤ 4 (so the experiment
        quantizes something: W4 on a Q4 source measures the source's grid, not the method)."""
        if self.quantized and self.bits is not None and self.bits <= paper_bits:
            return max(2, self.bits - 1)
        return paper_bits


FLOAT = SourceQuant(format="float", down_type="float")

def _gguf_bits(type_name: str) -> int | None:
    """Q4_1 → 4, Q6_K → 6, IQ4_XS → 4, Q8_0 → 8, TQ1_0 → 1 (ternary ≈ 1.6); F16/BF16/F32 → None."""
    if type_name.startswith("MXFP4"):  # gpt-oss GGUFs: 4-bit floats in blocks of 32
        return 4
    m = re.match(r"^(?:I|T)?Q(\d)", type_name)
    return int(m.group(1)) if m else None


def _summarise(kind: str, down: dict[str, int], every: dict[str, int], block_of) -> SourceQuant:
    types = tuple(TensorTypeShare(t, n) for t, n in sorted(every.items(), key=lambda kv: (-kv[1], kv[0])))
    if not down:  # no tensor named like a down projection: describe the largest type
        down = every
    down_type = max(down.items(), key=lambda kv: (kv[1], kv[0]))[0]
    quantized = [t for t in every if _gguf_bits(t) is not None]
    if not quantized:
        return SourceQuant(format=kind, down_type=down_type, types=types)
    # the coarsest grid decides (a Q4_K_M file keeps its down projections in Q6_K, the rest in Q4_K)
    grid = min(quantized, key=lambda t: (_gguf_bits(t), -every[t], t))
    return SourceQuant(format=kind, down_type=down_type, bits=_gguf_bits(grid), block=block_of(grid), types=types)


def from_gguf(path: Path) -> SourceQuant:
    """Tensor types of a GGUF file (header only: the data is memory-mapped, not read)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    down: dict[str, int] = {}
    every: dict[str, int] = {}
    for t in reader.tensors:
        name = t.tensor_type.name
        n = int(t.n_elements)
        every[name] = every.get(name, 0) + n
        if any(k in t.name for k in _DOWN):
            down[name] = down.get(name, 0) + n

    def block_of(type_name: str) -> int | None:
        try:
            return int(gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]][0])
        except (KeyError, AttributeError):
            return None

    return _summarise("gguf", down, every, block_of)


def from_hf_config(config: dict) -> SourceQuant:
    """`quantization_config` of an HF `config.json` (absent: a float checkpoint)."""
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return FLOAT
    method = str(q.get("quant_method") or "unknown").lower()
    if method == "bitsandbytes":
        if q.get("load_in_4bit") or q.get("_load_in_4bit"):
            kind = str(q.get("bnb_4bit_quant_type") or "fp4")
            return SourceQuant(format=method, down_type=kind, bits=4, block=64)
        return SourceQuant(format=method, down_type="int8", bits=8, block=None)
    bits = q.get("bits", q.get("w_bit", q.get("weight_bits")))
    group = q.get("group_size", q.get("q_group_size"))
    if isinstance(bits, int):
        block = group if isinstance(group, int) and group > 0 else None
        return SourceQuant(format=method, down_type=f"int{bits}", bits=bits, block=block)
    if "fp8" in method or q.get("fmt") in ("e4m3", "e5m2"):
        return SourceQuant(format=method, down_type="fp8", bits=8, block=None)
    return SourceQuant(format=method, down_type=method, bits=None, block=None)


def from_dir(path: Path) -> SourceQuant:
    try:
        return from_hf_config(json.loads((path / "config.json").read_text()))
    except (OSError, ValueError):
        return FLOAT


def to_json(sq: SourceQuant) -> dict:
    return {"format": sq.format, "down_type": sq.down_type, "bits": sq.bits, "block": sq.block,
            "quantized": sq.quantized, "types": {t.type: t.weights for t in sq.types}}


def from_json(data: dict | None) -> SourceQuant | None:
    if not data:
        return None
    types = tuple(TensorTypeShare(t, int(n)) for t, n in (data.get("types") or {}).items())
    return SourceQuant(format=data["format"], down_type=data["down_type"], bits=data.get("bits"),
                       block=data.get("block"), types=types)
