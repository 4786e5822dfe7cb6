"""Forward hooks that are always removed, and activation-level interventions on down_proj.

A scalar weight edit W[r,c] → W'[r,c] is exactly the activation correction
y[..., r] += x[..., c] · (W'[r,c] − W[r,c]) at that down projection. `RowCorrection` applies it to
chosen batch rows only, so a baseline and an edited model run as two rows of one batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RowCorrection:
    """y[rows, :, row] += x[rows, :, col] * delta (rows=None: every batch row)."""

    row: int
    col: int
    delta: float
    rows: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SARestore:
    """Write back the super activation at channel `row` where it appears.

    The original output channel is recovered exactly as y[..., row] + x[..., col]·(W0 − W_now);
    it is written back only at positions whose original |value| ≥ `threshold` (half the super
    activation measured at detection), i.e. at the super activation token(s), as in the paper.
    """

    row: int
    col: int
    delta: float  # W0 - W_now
    threshold: float
    rows: tuple[int, ...] | None = None


def _select(t, rows):
    return t if rows is None else t[list(rows)]


def down_proj_hook(corrections: list, transposed: bool = False):
    """A forward hook for one down_proj applying `RowCorrection`s and `SARestore`s in order."""

    def hook(module, args, output):
        x = args[0]
        y = output
        for corr in corrections:
            idx = slice(None) if corr.rows is None else list(corr.rows)
            xc = x[idx, ..., corr.col].to(y.dtype)
            if isinstance(corr, RowCorrection):
                y[idx, ..., corr.row] += xc * corr.delta
            else:
                current = y[idx, ..., corr.row]
                original = current + xc * corr.delta
                mask = original.abs() >= corr.threshold
                y[idx, ..., corr.row] = current.where(~mask, original)
        return y

    return hook


@contextlib.contextmanager
def installed(adapter, per_layer: dict[int, list]) -> Iterator[None]:
    """Install `down_proj_hook`s for {layer: [corrections]}; removed on exit, also on error."""
    hooks = HookSet()
    try:
        for layer, corrections in per_layer.items():
            if corrections:
                site = adapter.site(layer)
                hooks.add(site.down.register_forward_hook(down_proj_hook(list(corrections))))
        yield
    finally:
        hooks.close()


def count_hooks(model) -> int:
    """Forward (pre-)hooks registered anywhere on `model` (for leak checks)."""
    total = 0
    for module in model.modules():
        total += len(module._forward_hooks) + len(module._forward_pre_hooks)
    return total
