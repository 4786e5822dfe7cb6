"""Interventions from the paper, expressed through the ledger: prune/scale, SA restore, non-SW control."""

from __future__ import annotations

import re
from dataclasses import dataclass

from swtui.core.errors import UserInputError
from swtui.core.edits import check_factor
from swtui.core.session import Session

_INT = r"\s*(-?\d+)\s*"
_COORD = re.compile(rf"^{_INT},{_INT},{_INT}$")


def parse_coord(text: str) -> tuple[int, int, int]:
    """'11,507,1229' -> (11, 507, 1229); anything else is a UserInputError."""
    m = _COORD.match(text or "")
    if not m:
        raise UserInputError(f"coordinates must be LAYER,ROW,COL (three integers), not {text!r}")
    coord = tuple(int(g) for g in m.groups())
    if min(coord) < 0:
        raise UserInputError(f"coordinates must not be negative: {text!r}")
    return coord  # type: ignore[return-value]


def parse_scale(text: str) -> tuple[tuple[int, int, int], float]:
    """'11,507,1229=0.5' -> ((11, 507, 1229), 0.5)."""
    coord, sep, factor = (text or "").partition("=")
    if not sep:
        raise UserInputError(f"--scale takes LAYER,ROW,COL=FACTOR, not {text!r}")
    return parse_coord(coord), check_factor(factor.strip())


def channel_magnitude(session: Session, layer: int, row: int, prompt: str, variant: str = "base") -> float:
    """max |down_proj output[..., row]| at `layer` for `prompt`: the super activation's size."""
    import torch

    from swtui.core.hooks import HookSet

    site = session.adapter.site(layer)
    seen: list = []
    ids = session.encode(prompt)
    names, ctx = session.variant_runs((variant,))[0]
    with ctx, HookSet() as hooks, torch.no_grad():
        hooks.add(site.down.register_forward_hook(lambda m, a, out: seen.append(out[..., row].abs().max())))
        session.model(input_ids=ids, use_cache=False)
    return float(seen[-1])


def enable_sa_restore(session: Session, coord: tuple[int, int, int], prompt: str) -> float:
    """Turn on 'restore super activation' for `coord`; returns the pristine SA on `prompt` (for display)."""
    magnitude = channel_magnitude(session, coord[0], coord[1], prompt, variant="base")
    session.set_sa_restore(*coord, on=True)
    sw = session.find_super_weight(coord)
    if sw.sa_magnitude is None:
        sw.sa_magnitude = magnitude
    return magnitude


@dataclass
class NonSWControl:
    k: int
    pruned: list[tuple[str, tuple[int, int]]]  # (parameter name, storage index)
    min_abs: float


def prune_nonsw(session: Session, k: int, keep: set[tuple[int, int, int]]) -> NonSWControl:
    """Zero the K largest-|w| *pristine* weights of the decoder's linears, except those in `keep`.

    The paper's control. It is part of the ledger's state (a zero mask under the scalar edits and
    the quantization), so it composes with them in any order and is restored exactly.
    """
    import torch

    if not 0 < k <= 10_000_000:
        raise UserInputError("--nonsw-control K must be between 1 and 10,000,000")
    keep_idx = {(session.adapter.site(l).weight_name, session.adapter.site(l).index_of(r, c)) for l, r, c in keep}
    pool_vals, pool_ids = [], []
    linears = session.adapter.decoder_linears()
    with session.ledger.pristine_weights():
        for t_id, (name, module) in enumerate(linears):
            w = module.weight.detach().abs().reshape(-1)
            top = torch.topk(w.float(), min(k + len(keep), w.numel()))
            pool_vals.append(top.values.cpu())
            pool_ids.append(torch.stack([torch.full_like(top.indices, t_id), top.indices]).cpu())
        shapes = [module.weight.shape for _, module in linears]
    vals = torch.cat(pool_vals)
    ids = torch.cat(pool_ids, dim=1)
    order = torch.argsort(vals, descending=True)
    chosen: dict[int, list[int]] = {}
    pruned = []
    min_abs = 0.0
    for j in order.tolist():
        t_id, flat = int(ids[0, j]), int(ids[1, j])
        name, _ = linears[t_id]
        cols = shapes[t_id][1]
        idx = (flat // cols, flat % cols)
        if (f"{name}.weight", idx) in keep_idx:
            continue
        chosen.setdefault(t_id, []).append(flat)
        pruned.append((f"{name}.weight", idx))
        min_abs = float(vals[j])
        if len(pruned) == k:
            break
    session.ledger.set_zeros({f"{linears[t][0]}.weight": torch.tensor(sorted(f), dtype=torch.long)
                              for t, f in chosen.items()})
    return NonSWControl(k, pruned, min_abs)
