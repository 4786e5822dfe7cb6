"""Forward hooks that are always removed, and activation-level interventions on down_proj.

A scalar weight edit W[r,c] → W'[r,c] changes one output channel: y[..., r] += x[..., c]·(W' − W).
Interventions act on chosen *batch rows*, so variants run as rows of one batch: `ExactBase`
recomputes the pristine module for the baseline rows (bit-identical to a solo pristine run of
that layer), `RowCorrection` adds an exact scalar contribution back (bitsandbytes keep-SW),
`SARestore` writes the super activation back. Rows are batch rows for every architecture: OPT's
fc2 sees tokens flattened to [batch·tokens, channels], which `batch_view` undoes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator


class HookSet:
    """Collects hook handles; `close()` removes all of them (also used as a context manager)."""

    def __init__(self) -> None:
        self._handles: list = []

    def add(self, handle) -> None:
        self._handles.append(handle)

    def close(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    remove = close  # a HookSet can hold other HookSets

    def __enter__(self) -> "HookSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_tensor(value):
    if isinstance(value, (tuple, list)):
        return value[0]
    return value


def batch_view(t, batch: int | None):
    """`t` as [batch, tokens, channels]. OPT's fc2 sees [batch·tokens, channels]; rows stay rows."""
    if t.ndim == 2 and batch:
        return t.view(batch, -1, t.shape[-1])
    if t.ndim == 2:
        return t.unsqueeze(0)
    return t


class SequenceArgmax:
    """Where a sequence's maximum |value| sits, also while tokens arrive one step at a time.

    A forward of several tokens starts a new sequence (prefill, perplexity window, probe): the
    position is the argmax over its tokens. A one-token step (cached generation) continues it: the
    new token is the position only if its |value| reaches the running maximum.
    """

    def __init__(self) -> None:
        self.running: dict[int, float] = {}

    def mask(self, values, row: int):
        """values: [tokens] for one sequence -> boolean [tokens]."""
        import torch

        mags = values.abs().float()
        mask = torch.zeros_like(mags, dtype=torch.bool)
        if mags.shape[0] > 1 or row not in self.running:
            pos = int(mags.argmax())
            self.running[row] = float(mags[pos])
            mask[pos] = True
        elif float(mags[0]) >= self.running[row]:
            self.running[row] = float(mags[0])
            mask[0] = True
        return mask


@dataclass(frozen=True)
class RowCorrection:
    """y[rows, :, row] += x[rows, :, col] · delta, in float32 (rows=None: every batch row)."""

    row: int
    col: int
    delta: float
    rows: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ExactBase:
    """Rows `rows` of this down_proj get the pristine module's output, recomputed exactly.

    The pristine scalars are written into the weight for one call of the module's own forward on
    those rows (hooks are not re-entered) and the edited values written back: the same kernel on
    the same input as a solo run of the untouched model.
    """

    writes: tuple  # ((storage index, pristine 0-d tensor), ...)
    rows: tuple[int, ...]


@dataclass
class SARestore:
    """Restore the super activation on output channel `row` of batch rows `rows`.

    The pristine channel is y[..., row] + Σ x[..., col]·(W0 − W_now)[row, col] over every restored
    super weight of that row (float32), written back at the super activation's position in each
    sequence: the position of the largest |pristine value| (see `SequenceArgmax`), as the paper's
    code writes the original value at the max-|value| token.
    """

    row: int
    terms: tuple  # ((col, W0 − W_now), ...)
    rows: tuple[int, ...] | None = None
    tracker: SequenceArgmax = field(default_factory=SequenceArgmax)


@dataclass(frozen=True)
class ZeroWrite:
    """Activation ablation: the MLP writes nothing on output channel `channel` in batch rows `rows`."""

    channel: int
    rows: tuple[int, ...] | None = None


class Positions:
    """Where each massive channel is massive in each batch row's window: rows[r] = {channel: bool [T]}.
    The evaluation plan sets `rows` before each forward; `ZeroWriteAt` items read it."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def mask(self, channel: int, row: int):
        return self.rows[row].get(channel) if row < len(self.rows) else None


@dataclass(frozen=True)
class ZeroWriteAt:
    """The MLP writes nothing on `channel` at the positions where channel `positions_of` is
    massive in the current window (`Positions`), in batch rows `rows`: the massive-positions
    ablation, and its controls (other channels zeroed at the same positions)."""

    channel: int
    positions_of: int
    source: Positions
    rows: tuple[int, ...] | None = None


def down_proj_hook(items: list, batch: int | None = None):
    """A forward hook for one down_proj applying corrections, exact bases and SA restores."""
    import torch

    def hook(module, args, output):
        x = batch_view(args[0], batch)
        y = batch_view(_first_tensor(output), batch)  # (GPT-OSS's MoE block returns a tuple)
        for item in items:
            rows = list(range(y.shape[0])) if item.rows is None else list(item.rows)
            if isinstance(item, ExactBase):
                weight = module.weight
                with torch.no_grad():
                    edited = [(idx, weight[idx].clone()) for idx, _ in item.writes]
                    for idx, value in item.writes:
                        weight[idx] = value
                    try:  # the same shape a solo run feeds it: [rows, T, H], or [rows·T, H] (OPT)
                        xin = args[0][rows] if args[0].ndim == 3 else x[rows].reshape(-1, x.shape[-1])
                        base = module.forward(xin)
                    finally:
                        for idx, value in edited:
                            weight[idx] = value
                y[rows] = base.view(len(rows), -1, y.shape[-1]).to(y.dtype)
            elif isinstance(item, ZeroWrite):
                y[rows, :, item.channel] = 0
            elif isinstance(item, ZeroWriteAt):
                for r in rows:
                    mask = item.source.mask(item.positions_of, r)
                    if mask is not None and bool(mask.any()):
                        y[r, mask.nonzero().reshape(-1).to(y.device), item.channel] = 0
            elif isinstance(item, RowCorrection):
                corr = x[rows, :, item.col].float() * item.delta
                y[rows, :, item.row] = (y[rows, :, item.row].float() + corr).to(y.dtype)
            else:
                current = y[rows, :, item.row].float()
                original = current.clone()
                for col, delta in item.terms:
                    original += x[rows, :, col].float() * delta
                for j, r in enumerate(rows):
                    mask = item.tracker.mask(original[j], r)
                    current[j] = torch.where(mask, original[j], current[j])
                y[rows, :, item.row] = current.to(y.dtype)
        return output

    return hook


@contextlib.contextmanager
def installed(adapter, per_layer: dict[int, list], batch: int | None = None) -> Iterator[None]:
    """Install `down_proj_hook`s for {layer: [items]}; removed on exit, also on error.

    Where a post-FFN norm follows the down projection, the MLP's write into the residual stream is
    that norm's output: a `ZeroWrite` acts there (zeroing the down_proj channel instead would change
    the norm's RMS and rescale every other channel's write)."""
    hooks = HookSet()
    try:
        for layer, items in per_layer.items():
            if items:
                site = adapter.site(layer)
                post = site.post_norm
                if post is None and site.is_moe:  # fused experts: the MoE block's output is the write
                    post = site.block
                writes = [i for i in items if isinstance(i, (ZeroWrite, ZeroWriteAt))] if post is not None else []
                rest = [i for i in items if not any(i is w for w in writes)]
                if rest and site.is_moe:
                    raise ValueError(f"layer {layer}: fused experts take no down_proj interventions "
                                     f"({type(rest[0]).__name__})")
                if rest:
                    hooks.add(site.down.register_forward_hook(down_proj_hook(rest, batch)))
                if writes:
                    hooks.add(post.register_forward_hook(down_proj_hook(writes, batch)))
        yield
    finally:
        hooks.close()


def count_hooks(model) -> int:
    """Forward (pre-)hooks registered anywhere on `model` (for leak checks)."""
    total = 0
    for module in model.modules():
        total += len(module._forward_hooks) + len(module._forward_pre_hooks)
    return total
