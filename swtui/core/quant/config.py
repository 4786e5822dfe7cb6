"""What to quantize and how: one frozen value per concept, with its validation and its
description, used alike by the engine's protocol, the CLI, the TUI's presets and form, the
comparison's variants and snapshots. No torch (the TUI imports it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from swtui.core.errors import QuantizationError, UserInputError

METHODS = ("rtn", "bnb-int8", "bnb-nf4", "bnb-fp4")
GROUPS = ("tensor", "channel", "block", "tile")
MAX_VARIANTS = 3
HELD_OUT_FORM = "held_out must be a list of [layer, row, col] (in fused experts [layer, row, col, expert])"
_BNB_LABELS = {"bnb-int8": "bnb LLM.int8", "bnb-nf4": "bnb NF4", "bnb-fp4": "bnb FP4"}


def check_bits(bits) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise QuantizationError(f"bits must be an integer from 2 to 8, not {bits!r}")
    return bits


@dataclass(frozen=True)
class QuantConfig:
    """A weight (and optionally activation) quantization. The defaults are the paper's
    comparison's grouping: one group per tensor (bits: `defaults.PAPER_BITS`)."""
    method: str = "rtn"
    bits: int = 4
    group: str = "tensor"
    block: int | None = None  # 1-D block size (group "block") or tile side (group "tile")
    clip_z: float | None = None
    keep_super_weights: bool = False
    act_bits: int | None = None
    act_site: str = "input"
    act_sa: bool = False
    #: the (layer, row, col) held out, fixed when the config is applied (None: not yet resolved)
    held_out: tuple[tuple[int, ...], ...] | None = None  # (layer, row, col[, expert])

    def to_dict(self) -> dict:
        data = asdict(self)
        data["held_out"] = None if self.held_out is None else [list(k) for k in self.held_out]
        return data

    def describe(self) -> str:
        if self.method == "rtn":
            where = {"tensor": "per tensor", "channel": "per channel"}.get(self.group, f"{self.group} {self.block}")
            text = f"RTN W{self.bits} {where}"
            if self.clip_z:
                text += f" clip z{self.clip_z:g}"
        else:
            text = _BNB_LABELS[self.method]
        if self.keep_super_weights:
            text += " +SW kept"
        if self.act_bits:
            text += f" A{self.act_bits}@{self.act_site}" + (" +SA kept" if self.act_sa else "")
        return text

    def unresolved(self) -> "QuantConfig":
        """The same config before its held-out set was fixed (what a user chose)."""
        return replace(self, held_out=None)


def describe_config(config: "QuantConfig | dict | None") -> str:
    """A config's label ("full precision" for None), or the reason it is not valid."""
    if config is None:
        return "full precision"
    try:
        return parse_config(config).describe()
    except QuantizationError as exc:
        return f"invalid: {exc}"


def parse_config(data: "QuantConfig | dict") -> QuantConfig:
    """A valid QuantConfig from a config or its dict form; QuantizationError says what is wrong."""
    if isinstance(data, QuantConfig):
        cfg = data
    else:
        try:
            cfg = QuantConfig(**data)
        except TypeError as exc:
            raise QuantizationError(f"bad quantization config: {exc}") from None
    if cfg.method not in METHODS:
        raise QuantizationError(f"method must be one of {', '.join(METHODS)}, not {cfg.method!r}")
    if cfg.method == "rtn":
        check_bits(cfg.bits)
        if cfg.group not in GROUPS:
            raise QuantizationError(f"group must be one of {', '.join(GROUPS)}, not {cfg.group!r}")
        if cfg.group in ("block", "tile") and (not isinstance(cfg.block, int) or cfg.block < 2 or cfg.block > 1 << 31):
            raise QuantizationError(f"block size must be an integer from 2 to 2^31, not {cfg.block!r}")
    if cfg.clip_z is not None and not (isinstance(cfg.clip_z, (int, float)) and 0 < cfg.clip_z < 1e6):
        raise QuantizationError(f"clip z-score must be a positive number, not {cfg.clip_z!r}")
    if cfg.held_out is not None:
        try:
            held = tuple(sorted({tuple(int(v) for v in key) for key in cfg.held_out}))
        except (TypeError, ValueError):
            raise QuantizationError(HELD_OUT_FORM) from None
        if any(len(k) not in (3, 4) or min(k) < 0 for k in held):
            raise QuantizationError(HELD_OUT_FORM)
        cfg = replace(cfg, held_out=held)
    if cfg.act_bits is not None:
        check_bits(cfg.act_bits)
        if cfg.act_site not in ("input", "output"):
            raise QuantizationError("activation site must be 'input' or 'output'")
    return cfg


@dataclass(frozen=True)
class Variant:
    """One column of a comparison: a named quantization (None: full precision), on top of the
    current scalar edits or on the unedited weights."""
    name: str
    config: QuantConfig | None
    with_edits: bool = True

    def describe(self) -> str:
        return describe_config(self.config) + ("" if self.with_edits else ", unedited")

    def to_dict(self) -> dict:
        return {"name": self.name, "config": None if self.config is None else self.config.to_dict(),
                "with_edits": self.with_edits}

    @classmethod
    def from_dict(cls, data: dict) -> "Variant":
        """From its dict form (snapshots, `--variant`); the config is validated."""
        try:
            config = data.get("config")
            return cls(str(data["name"]), None if config is None else parse_config(config),
                       bool(data.get("with_edits", True)))
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserInputError(f"bad variant {data!r}: {exc}") from None


def check_variants(variants) -> None:
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise UserInputError(f"a comparison holds 1 to {MAX_VARIANTS} variants, not {len(variants)}")
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or "baseline" in names:
        raise UserInputError("variant names must be distinct and not 'baseline'")
    for v in variants:
        if v.config is not None:
            parse_config(v.config)


#: bitsandbytes' weight formats as (bits, block): NF4/FP4 in blocks of 64, LLM.int8 per row
_BNB = {"bnb-nf4": (4, 64), "bnb-fp4": (4, 64), "bnb-int8": (8, None)}


def quant_confound(source, config) -> str | None:
    """`source.confound` (`source_quant.SourceQuant`, how the source stored its weights) for a
    quantization config (`QuantConfig` or its dict form): RTN by its bits and 1-D block (per tensor,
    per channel and tiles align with no source block), bitsandbytes by its format's bits and block.
    None: full precision, or nothing confounded."""
    if not config:
        return None
    cfg = parse_config(config)
    if cfg.method in _BNB:
        bits, block = _BNB[cfg.method]
    else:
        bits, block = cfg.bits, cfg.block if cfg.group == "block" else None
    return source.confound(int(bits), block)
