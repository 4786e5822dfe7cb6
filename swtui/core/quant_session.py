"""Apply a quantization configuration to a session, through the ledger, and undo it exactly.

Weights: RTN (fake-quantized tensors, ledger tensor edits) or bitsandbytes (LLM.int8 / NF4 / FP4
modules, ledger module swaps). Super weights are held out for RTN as RESTORE(Q⁻¹(Q(CLIP_z(W))))
where the super weight is also left out of its group's MIN/MAX (zeroed before quantizing), then
written back in full precision; clipping is optional (`clip_z`). Packed bitsandbytes storage cannot
hold one full-precision scalar, so there the super weight is zeroed before packing (it no longer
dominates its block's scale) and its exact contribution x[..., col]·W[row, col] is added back by an
activation hook on that down_proj: the same identity the A/B comparison uses.
Activations: simulated per-tensor A-bit fake quantization at every down_proj input or output,
optionally with the super activation replaced by the median and restored (REPLACE/RESTORE).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Callable

from swtui.core.errors import Cancelled, QuantizationError
from swtui.core.hooks import HookSet, RowCorrection, down_proj_hook
from swtui.core.quant import GROUPS, check_bits, fake_quant_activation, rtn

METHODS = ("rtn", "bnb-int8", "bnb-nf4", "bnb-fp4")


@dataclass(frozen=True)
class QuantConfig:
    method: str = "rtn"
    bits: int = 4
    group: str = "block"
    block: int | None = 4096
    clip_z: float | None = None
    keep_super_weights: bool = False
    act_bits: int | None = None
    act_site: str = "input"
    act_sa: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.method == "rtn":
            where = {"tensor": "per tensor", "channel": "per channel"}.get(self.group, f"{self.group} {self.block}")
            text = f"RTN W{self.bits} {where}"
            if self.clip_z:
                text += f" clip z{self.clip_z:g}"
        else:
            text = {"bnb-int8": "bnb LLM.int8", "bnb-nf4": "bnb NF4", "bnb-fp4": "bnb FP4"}[self.method]
        if self.keep_super_weights:
            text += " +SW kept"
        if self.act_bits:
            text += f" A{self.act_bits}@{self.act_site}" + (" +SA kept" if self.act_sa else "")
        return text


def parse_config(data: dict) -> QuantConfig:
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
    if cfg.act_bits is not None:
        check_bits(cfg.act_bits)
        if cfg.act_site not in ("input", "output"):
            raise QuantizationError("activation site must be 'input' or 'output'")
    return cfg


def _held_out(session, cfg: QuantConfig) -> list[tuple[int, int, int]]:
    if not cfg.keep_super_weights:
        return []
    return [sw.key for sw in session.super_weights if sw.is_super is not False]


def unquantize(session) -> None:
    session.current_hook_factories[:] = [f for f in session.current_hook_factories
                                         if not getattr(f, "swtui_quant", False)]
    session.ledger.restore_modules()
    session.ledger.restore_tensors()
    session.quant_config = None


def apply_quant_config(session, config: dict | None, progress: Callable | None = None,
                       cancel: threading.Event | None = None) -> str:
    """Quantize the session's model per `config` (None: back to full precision). Returns a label."""
    cfg = parse_config(config) if config is not None else None
    unquantize(session)
    if cfg is None:
        return "full precision"
    progress = progress or (lambda stage, frac: None)
    try:
        if cfg.method == "rtn":
            _apply_rtn(session, cfg, progress, cancel)
        else:
            _apply_bnb(session, cfg, progress, cancel)
        if cfg.act_bits:
            _add_act_quant(session, cfg)
    except BaseException:
        unquantize(session)  # never leave a half-quantized model behind
        raise
    session.quant_config = cfg.to_dict()
    return cfg.describe()


def _tensor_keys(session, name: str, keys):
    for key in keys:
        site = session.adapter.site(key[0])
        if site.weight_name == name:
            yield key, site.index_of(key[1], key[2])


def _apply_rtn(session, cfg: QuantConfig, progress, cancel) -> None:
    import torch

    keep = _held_out(session, cfg)
    linears = session.adapter.decoder_linears()
    for i, (name, module) in enumerate(linears):
        if cancel is not None and cancel.is_set():
            raise Cancelled("quantization cancelled")
        w = module.weight
        transposed = type(module).__name__ == "Conv1D"
        kept = list(_tensor_keys(session, f"{name}.weight", keep))
        source = w.detach()
        if kept:  # held out: the super weight does not set its group's range, and is restored after
            source = source.clone()
            for _, idx in kept:
                source[idx] = 0
        logical = source.t() if transposed else source  # [out, in]: channel = output row
        q = rtn(logical, cfg.bits, cfg.group, cfg.block, cfg.clip_z)
        new = q.t().contiguous() if transposed else q
        with torch.no_grad():
            for key, idx in kept:
                new[idx] = session.ledger.pristine_value(*key)
        session.ledger.replace_tensor(f"{name}.weight", new)
        progress(f"RTN W{cfg.bits}: {name}", (i + 1) / len(linears))


def _bnb_module(module, cfg: QuantConfig, weight):
    import torch
    import bitsandbytes as bnb

    if not isinstance(module, torch.nn.Linear):
        raise QuantizationError(f"bitsandbytes replaces nn.Linear only; {type(module).__name__} is not one")
    device = weight.device
    has_bias = module.bias is not None
    if cfg.method == "bnb-int8":
        new = bnb.nn.Linear8bitLt(module.in_features, module.out_features, bias=has_bias,
                                  has_fp16_weights=False, threshold=6.0)
        new.weight = bnb.nn.Int8Params(weight.detach().to(torch.float16 if device.type == "cuda" else weight.dtype).clone(),
                                       requires_grad=False, has_fp16_weights=False)
    else:
        quant_type = "nf4" if cfg.method == "bnb-nf4" else "fp4"
        new = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=has_bias, quant_type=quant_type,
                                compute_dtype=weight.dtype)
        new.weight = bnb.nn.Params4bit(weight.detach().clone(), requires_grad=False, quant_type=quant_type)
    if has_bias:
        new.bias = torch.nn.Parameter(module.bias.detach().clone(), requires_grad=False)
    return new.to(device)


def _effective_weight(module, row: int, col: int, dtype, device) -> float:
    """W[row, col] as the packed module computes it: its output for the one-hot input e_col."""
    import torch

    x = torch.zeros(1, module.in_features, dtype=dtype, device=device)
    x[0, col] = 1
    with torch.no_grad():
        y = module(x).float()
        if module.bias is not None:
            y = y - module.bias.float()
    return float(y[0, row])


def _apply_bnb(session, cfg: QuantConfig, progress, cancel) -> None:
    keep = _held_out(session, cfg)
    linears = session.adapter.decoder_linears()
    corrections: dict[int, list] = {}
    for i, (name, module) in enumerate(linears):
        if cancel is not None and cancel.is_set():
            raise Cancelled("quantization cancelled")
        weight = module.weight.detach()
        kept = list(_tensor_keys(session, f"{name}.weight", keep))
        if kept:
            weight = weight.clone()
            for _, idx in kept:
                weight[idx] = 0  # out of the block's scale; added back exactly by a hook
        new = _bnb_module(module, cfg, weight)
        session.ledger.swap_module(name, new)
        for key, idx in kept:
            want = float(module.weight[idx])  # full precision, with any element edit
            have = _effective_weight(new, key[1], key[2], module.weight.dtype, module.weight.device)
            corrections.setdefault(key[0], []).append(RowCorrection(key[1], key[2], want - have))
        progress(f"{cfg.describe()}: {name}", (i + 1) / len(linears))
    if corrections:
        def factory(sess, rows, _c=corrections):
            hooks = HookSet()
            for layer, items in _c.items():
                scoped = [RowCorrection(c.row, c.col, c.delta, rows) for c in items]
                hooks.add(sess.adapter.site(layer).down.register_forward_hook(down_proj_hook(scoped)))
            return hooks
        factory.swtui_quant = True
        session.current_hook_factories.append(factory)


def _add_act_quant(session, cfg: QuantConfig) -> None:
    """Fake-quantize every down_proj input (pre-hook) or output (hook) of the current variant."""
    sa = {}
    if cfg.act_sa:
        for sw in session.super_weights:
            if sw.is_super is not False:
                mag = (sw.in_act if cfg.act_site == "input" else sw.sa_magnitude) or 0.0
                sa.setdefault(sw.layer, []).append((sw.col if cfg.act_site == "input" else sw.row, 0.5 * mag))

    def mask_for(t, layer):
        import torch

        items = sa.get(layer)
        if not items:
            return None
        mask = torch.zeros_like(t, dtype=torch.bool)
        for channel, threshold in items:
            mask[..., channel] = t[..., channel].abs() >= threshold
        return mask

    def factory(sess, rows):
        hooks = HookSet()
        for site in sess.adapter.sites:
            layer = site.index

            def quant(t, layer=layer):
                out = t.clone()
                for r in (range(t.shape[0]) if rows is None else rows):
                    out[r] = fake_quant_activation(t[r], cfg.act_bits, mask_for(t[r], layer))
                return out

            if cfg.act_site == "input":
                hooks.add(site.down.register_forward_pre_hook(lambda m, args, q=quant: (q(args[0]),) + args[1:]))
            else:
                hooks.add(site.down.register_forward_hook(lambda m, args, out, q=quant: q(out)))
        return hooks

    factory.swtui_quant = True
    session.current_hook_factories.append(factory)
