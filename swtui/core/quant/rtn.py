"""Round-to-nearest quantization (the paper's Q and Q⁻¹), grouping, and z-score clipping.

Asymmetric RTN over a group X:  Δ = (max X − min X) / (2^N − 1),  Q(x) = round((x − min X) / Δ),
Q⁻¹(q) = Δ·q + min X.  We use 2^N − 1 steps (the reference code's convention; the paper's text
writes 2^(N−1) − 1). Groups: the whole tensor, one output channel, 1-D blocks of B contiguous
elements of the flattened tensor (the reference code's convention; a last, shorter block takes
the remainder), or 2-D tiles of T×T. Clipping: threshold = z·std(|W|) + mean(|W|) per group,
W clamped to ±threshold. All arithmetic in float32; the result is cast back to W's dtype.
"""

from __future__ import annotations

from swtui.core.errors import QuantizationError
from swtui.core.quant.config import GROUPS, check_bits  # noqa: F401 - defined once, used here


def _rtn_rows(x, bits: int):
    """Quantize-dequantize each row of a 2-D float32 tensor as one group.

    (x − min)/Δ lies in [0, 2^N − 1] by construction, so no clamp is needed; a constant group
    (Δ = 0) gets Δ := 1 and comes back exactly as min = x. One allocation, five in-place passes.
    """
    import torch

    levels = (1 << bits) - 1
    lo, hi = torch.aminmax(x, dim=1, keepdim=True)
    delta = (hi - lo) / levels
    delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    q = x - lo
    return q.div_(delta).round_().mul_(delta).add_(lo)


def _clip_rows(x, z: float):
    """Clamp each row (group) to ±(z·std|x| + mean|x|)."""
    a = x.abs()
    thr = z * a.std(dim=1, keepdim=True, unbiased=False) + a.mean(dim=1, keepdim=True)
    return x.clamp(min=-thr, max=thr)


def _apply_grouped(w2d, fn, group: str, block: int | None):
    """Apply fn(rows) to w2d's groups laid out as rows; return a tensor shaped like w2d."""
    import torch

    if group == "tensor":
        return fn(w2d.reshape(1, -1)).reshape(w2d.shape)
    if group == "channel":
        return fn(w2d)
    if group == "block":
        if block is None or block < 2:
            raise QuantizationError(f"block size must be an integer ≥ 2, not {block!r}")
        flat = w2d.reshape(-1)
        n_full = flat.numel() // block
        if flat.numel() % block == 0:
            return fn(flat.reshape(n_full, block)).reshape(w2d.shape)
        out = torch.empty_like(flat)
        if n_full:
            out[: n_full * block] = fn(flat[: n_full * block].reshape(n_full, block)).reshape(-1)
        out[n_full * block:] = fn(flat[n_full * block:].reshape(1, -1)).reshape(-1)
        return out.reshape(w2d.shape)
    if group == "tile":
        rows, cols = w2d.shape
        if block is None or block < 2 or rows % block or cols % block:
            raise QuantizationError(f"tile size {block!r} does not divide the {rows}×{cols} weight")
        tiles = w2d.reshape(rows // block, block, cols // block, block).permute(0, 2, 1, 3)
        shaped = tiles.reshape(-1, block * block)
        out = fn(shaped).reshape(rows // block, cols // block, block, block).permute(0, 2, 1, 3)
        return out.reshape(rows, cols)
    raise QuantizationError(f"group must be one of {', '.join(GROUPS)}, not {group!r}")


def rtn(w, bits: int, group: str = "tensor", block: int | None = None, clip_z: float | None = None,
        held=None):
    """RESTORE(Q⁻¹(Q(CLIP_z(W)))) with the given grouping; `w` is 2-D [out, in]; returns W's dtype.

    `held` (a boolean mask like `w`, or None) marks weights held out in full precision: the clip
    statistics include them (as the paper's code computes z over the whole group), they take no
    part in their group's MIN/MAX (set to 0 before rounding), and they are written back unchanged.
    """
    check_bits(bits)
    if clip_z is not None and not clip_z > 0:
        raise QuantizationError(f"clip z-score must be > 0, not {clip_z!r}")
    x = w.detach().float()
    if x.ndim != 2:
        raise QuantizationError("RTN expects a 2-D weight")
    if held is not None and not bool(held.any()):
        held = None
    if held is None:
        def fn(rows):
            return _rtn_rows(_clip_rows(rows, clip_z) if clip_z is not None else rows, bits)

        return _apply_grouped(x, fn, group, block).to(w.dtype)
    if clip_z is not None:
        x = _apply_grouped(x, lambda rows: _clip_rows(rows, clip_z), group, block)
    x = x.masked_fill(held, 0.0)
    out = _apply_grouped(x, lambda rows: _rtn_rows(rows, bits), group, block).to(w.dtype)
    return out.masked_scatter(held, w.detach()[held])


def fake_quant_activation(a, bits: int = 8, keep_mask=None):
    """Per-tensor asymmetric fake quantization of an activation.

    With `keep_mask` (the super activation's positions): REPLACE them by the median, quantize,
    dequantize, RESTORE the originals — the paper's Â = RESTORE(Q⁻¹(Q(REPLACE(A)))).
    """
    import torch

    x = a.float()
    if keep_mask is not None and keep_mask.any():
        median = x.median()
        replaced = torch.where(keep_mask, median, x)
        out = _rtn_rows(replaced.reshape(1, -1), bits).reshape(x.shape)
        out = torch.where(keep_mask, x, out)
    else:
        out = _rtn_rows(x.reshape(1, -1), bits).reshape(x.shape)
    return out.to(a.dtype)
