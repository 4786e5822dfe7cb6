"""The value types and pure functions of weight edits, and the weights' fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from swtui.core.errors import UserInputError
from swtui.core.model.offload import real_tensor

Key = tuple[int, ...]  # (layer, row, col) of a down_proj weight; (layer, row, col, expert) in fused experts


def make_key(layer: int, row: int, col: int, expert: int | None = None) -> Key:
    """A weight's key: (layer, row, col) for a dense down projection, + expert for a fused one."""
    return (layer, row, col) if expert is None else (layer, row, col, expert)


@dataclass(frozen=True)
class ScalarEdit:
    op: str  # "prune" | "scale"
    factor: float  # 0.0 for prune


def check_factor(factor) -> float:
    try:
        value = float(factor)
    except (TypeError, ValueError):
        raise UserInputError(f"scale factor must be a number, not {factor!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UserInputError(f"scale factor must be finite, not {factor!r}")
    if abs(value) > 1e6:
        raise UserInputError(f"scale factor {value:g} is absurd (|factor| must be ≤ 1e6)")
    return value


def edited_scalar(pristine, edit: ScalarEdit):
    """E for one element: the pristine 0-d tensor under `edit`, computed in float64, rounded once."""
    if edit.op == "prune":
        return pristine.new_zeros(())
    return (pristine.double() * edit.factor).to(pristine.dtype)


def weights_hash(model) -> str:
    """SHA-256 over every parameter and buffer's bytes, in name order (tied tensors once)."""
    import torch

    h = hashlib.sha256()
    seen = set()
    for name, tensor in sorted(list(model.state_dict(keep_vars=True).items())):
        if tensor is None:
            continue
        t = real_tensor(model, name, tensor.detach())  # offloaded: the values accelerate would load
        # tied tensors once: by storage, or (offloaded, streamed) by the placeholder, since a tensor
        # read for the occasion may reuse the address of one read before it
        ident = t.data_ptr() if tensor.device.type != "meta" else ("meta", id(tensor))
        if ident in seen and t.numel():
            continue
        seen.add(ident)
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        if t.numel():
            h.update(t.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()
