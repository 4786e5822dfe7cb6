"""Quantization configurations and the quantizers the ledger applies them with.

The ledger computes W_current = Q(E(W_pristine)): a quantizer never reads the live weights, only
the edited tensor the ledger hands it, so "prune then quantize" and "quantize then prune" give the
same weights. Weights: RTN (fake-quantized dense tensors) or bitsandbytes (LLM.int8 / NF4 / FP4
module swaps). Super weights are held out as RESTORE(Q⁻¹(Q(CLIP_z(W)))): the clip statistics
include them, they take no part in their group's MIN/MAX, and their edited full-precision value is
written back. Packed bitsandbytes storage cannot hold one full-precision scalar, so there the
super weight is zeroed before packing and its exact contribution x[..., col]·W[row, col] is added
back by an activation hook (`EditLedger.corrections`). Activations: simulated per-tensor A-bit fake
quantization at every down_proj input or output of the edited variant, optionally with the super
activation replaced by the median and restored (REPLACE/RESTORE), per sequence.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Callable

from swtui.core.errors import QuantizationError
from swtui.core.quant.rtn import fake_quant_activation, rtn
from swtui.core.quant.config import (HELD_OUT_FORM, METHODS, QuantConfig, describe_config,  # noqa: F401
                                     parse_config)


def held_out_keys(session) -> list[tuple[int, int, int]]:
    """What "keep super weights" holds out: every weight of the session that detection judged part
    of a super weight or of a super-weight group:

    - a weight judged a super weight or a group member (`groups.is_super_or_member`: verdict SUPER
      or GROUP, or not judged at all, e.g. named by the user), or one whose verdict is INCONCLUSIVE
      (not evidence that it is harmless: on fewer than `evidence.MIN_TOKENS` evaluation tokens every
      verdict is inconclusive, and holding a weight out costs one full-precision scalar);
    - every other *carrier* of a massive channel that one of those carries (the channel's verdict is
      then SUPER or GROUP): a second writer of the super weight's channel, harmless alone, carries
      part of the same activation (the demo's W[507, 1487] of layer 11), and clipping it takes that
      part away. Cancellers are not held out.

    No cap: the set is as large as detection found it (its rounds and the massive channels'
    carriers bound it); each held-out weight costs one boolean per element of its tensor while that
    tensor is quantized, nothing more."""
    from swtui.core.verdicts import INCONCLUSIVE, is_super_or_member

    judged = [sw for sw in session.super_weights if is_super_or_member(sw) or sw.verdict == INCONCLUSIVE]
    keys = {sw.key for sw in judged}
    channels = {sw.row for sw in judged if getattr(sw, "role", None) == "carrier"}
    keys |= {sw.key for sw in session.super_weights
             if getattr(sw, "role", None) == "carrier" and sw.row in channels}
    return sorted(keys)


def held_out_json(session, keys=None) -> list[dict]:
    """The held-out set for JSON: each weight with its value and why it is held out."""
    by_key = {sw.key: sw for sw in session.super_weights}
    out = []
    for key in (held_out_keys(session) if keys is None else keys):
        sw = by_key.get(tuple(key))
        out.append({"key": list(key), "value": session.ledger.pristine_value(*key),
                    "verdict": getattr(sw, "verdict", None), "source": getattr(sw, "source", None)})
    return out


def _resolve_held(session, cfg: QuantConfig) -> QuantConfig:
    """Fix the held-out coordinates: `held_out_keys` (super weights and group members), or none."""
    if cfg.held_out is not None:
        for key in cfg.held_out:
            session.adapter.check_coords(*key)
        return cfg if cfg.keep_super_weights else replace(cfg, held_out=())
    if not cfg.keep_super_weights:
        return replace(cfg, held_out=())
    return replace(cfg, held_out=tuple(held_out_keys(session)))


class WeightQuantizer:
    """Q for the ledger: which modules it rewrites and how (dense fake-quant or a packed module)."""

    def __init__(self, cfg: QuantConfig, adapter):
        self.config = cfg
        self.held = frozenset(cfg.held_out or ())
        # the decoder's linears, and each layer of fused experts (their down projections, per expert)
        self._targets = [name for name, _ in adapter.decoder_linears()] + \
            [s.down_name for s in adapter.sites if s.is_moe]
        self._target_set = frozenset(self._targets)
        self._held_by_module: dict[str, list] = {}
        for key in self.held:
            site = adapter.site(key[0])
            self._held_by_module.setdefault(site.down_name, []).append((key, site.index_of(*key[1:])))

    def targets(self, adapter) -> frozenset:
        return self._target_set

    def dense(self, name: str, module, w):
        """RTN: Q⁻¹(Q(CLIP_z(w))) with the held-out weights kept; None for packed methods."""
        import torch

        cfg = self.config
        if cfg.method != "rtn":
            return None
        transposed = type(module).__name__ == "Conv1D" or bool(getattr(module, "is_transposed", False))
        held = None
        if self._held_by_module.get(name):
            held = torch.zeros_like(w, dtype=torch.bool)
            for _, idx in self._held_by_module[name]:
                held[idx] = True
        if w.ndim == 3:  # fused experts: each expert's down projection is a tensor of its own
            return torch.stack([self._rtn2d(w[e], None if held is None else held[e], transposed)
                                for e in range(w.shape[0])])
        return self._rtn2d(w, held, transposed)

    def _rtn2d(self, w, held, transposed: bool):
        cfg = self.config
        logical = w.t() if transposed else w  # [out, in]: channel = output row
        q = rtn(logical, cfg.bits, cfg.group, cfg.block, cfg.clip_z,
                held=None if held is None else (held.t() if transposed else held))
        return q.t().contiguous() if transposed else q

    def effective_weight(self, module, row: int, col: int) -> float:
        return effective_weight(module, row, col)

    def activation_hooks(self, session, rows, batch: int):
        """The activations' fake quantization of this config, on batch rows `rows` (`activation_hooks`)."""
        return activation_hooks(session, self.config, rows, batch)

    def packed(self, name: str, module, w):
        """bitsandbytes: the packed module, and the exact add-back of each held-out weight."""
        if w.ndim != 2:
            raise QuantizationError(f"{name}: bitsandbytes packs nn.Linear only, not a fused experts tensor "
                                    f"{tuple(w.shape)}; use RTN on a mixture of experts")
        kept = self._held_by_module.get(name, [])
        source = w
        if kept:
            source = w.clone()
            for _, idx in kept:
                source[idx] = 0  # out of the block's scale; added back exactly by a hook
        new = _bnb_module(module, self.config, source)
        corrections = {}
        for key, idx in kept:
            corrections[key] = float(w[idx]) - effective_weight(new, key[1], key[2])
        return new, corrections


def apply_quant_config(session, config: "QuantConfig | dict | None", progress: Callable | None = None,
                       cancel: threading.Event | None = None) -> str:
    """Quantize the session's model per `config` (None: back to full precision). Returns a label.

    All or nothing: a failure or a cancel leaves the previous quantization in place.
    """
    cfg = parse_config(config) if config is not None else None
    if cfg is None:
        session.ledger.set_quantizer(None, progress, cancel)
        return "full precision"
    cfg = _resolve_held(session, cfg)
    if cfg.act_bits and session.adapter.is_moe:
        raise QuantizationError("activation quantization hooks a down projection's input and output; in fused "
                                "experts there is no such module (weights only, with RTN)")
    if cfg.method != "rtn":
        if session.adapter.is_moe:
            raise QuantizationError(f"{cfg.method}: bitsandbytes packs nn.Linear layers only and this model's "
                                    "experts are fused 3-D tensors; use RTN (it quantizes each expert)")
        import bitsandbytes  # noqa: F401 - fail before anything changes when it is missing
    session.ledger.set_quantizer(WeightQuantizer(cfg, session.adapter), progress, cancel)
    return cfg.describe()


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


def effective_weight(module, row: int, col: int) -> float:
    """W[row, col] as a (packed) linear computes it: its output for the one-hot input e_col."""
    import torch

    dtype = getattr(module, "compute_dtype", None) or torch.float32
    if "Linear8bitLt" in type(module).__name__:
        dtype = torch.float16 if module.weight.device.type == "cuda" else torch.float32
    x = torch.zeros(1, module.in_features, dtype=dtype, device=module.weight.device)
    x[0, col] = 1
    with torch.no_grad():
        y = module(x).float()
        if module.bias is not None:
            y = y - module.bias.float()
    return float(y[0, row])


def activation_hooks(session, cfg: QuantConfig, rows, batch: int):
    """Fake-quantize every down_proj input (pre-hook) or output (hook) of batch rows `rows`.

    Per-tensor scale per sequence. With `act_sa`, the super activation (the position of the
    per-sequence max |value| on the super weight's channel, see `SequenceArgmax`) is REPLACEd by
    the median before and RESTOREd after.
    """
    import torch

    from swtui.core.edits.hooks import HookSet, SequenceArgmax, batch_view

    channels: dict[int, set] = {}
    trackers: dict[tuple[int, int], SequenceArgmax] = {}  # the SA position, also during cached decoding
    if cfg.act_sa:
        for key in cfg.held_out or held_out_keys(session):
            layer, row, col = key
            channels.setdefault(layer, set()).add(col if cfg.act_site == "input" else row)

    def quant(t, layer):
        view = batch_view(t, batch)
        out = view.clone()
        for r in (range(view.shape[0]) if rows is None else rows):
            seq = view[r]
            mask = None
            if channels.get(layer):
                mask = torch.zeros_like(seq, dtype=torch.bool)
                for ch in channels[layer]:
                    tracker = trackers.setdefault((layer, ch), SequenceArgmax())
                    mask[:, ch] = tracker.mask(seq[..., ch], r)
            out[r] = fake_quant_activation(seq, cfg.act_bits, mask)
        return out.reshape(t.shape)

    hooks = HookSet()
    for site in session.adapter.sites:
        if cfg.act_site == "input":
            hooks.add(site.down.register_forward_pre_hook(
                lambda m, args, i=site.index: (quant(args[0], i),) + tuple(args[1:])))
        else:
            hooks.add(site.down.register_forward_hook(lambda m, args, out, i=site.index: quant(out, i)))
    return hooks
