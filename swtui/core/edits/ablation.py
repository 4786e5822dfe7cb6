"""Interventions from the paper, expressed through the ledger: prune/scale, SA restore, non-SW control."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from swtui.core.errors import UserInputError
from swtui.core.edits.keys import check_factor
from swtui.core.edits.session import Session

_INT = r"\s*(-?\d+)\s*"
_COORD = re.compile(rf"^{_INT},{_INT},{_INT}(?:,{_INT})?$")  # a fused expert's weight: LAYER,ROW,COL,EXPERT


def parse_coord(text: str) -> tuple[int, int, int]:
    """'11,507,1229' -> (11, 507, 1229), '1,5,17,2' -> (1, 5, 17, 2) (fused experts: + the expert);
    anything else is a UserInputError."""
    m = _COORD.match(text or "")
    if not m:
        raise UserInputError(f"coordinates must be LAYER,ROW,COL (three integers; fused experts: "
                             f"LAYER,ROW,COL,EXPERT), not {text!r}")
    coord = tuple(int(g) for g in m.groups() if g is not None)
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

    from swtui.core.edits.hooks import HookSet

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


#: the reference code's selection: the top 1e-6 of |w| in every decoder linear
PAPER_FRACTION = 1e-6


@dataclass
class NonSWControl:
    """The weights the non-super-weight control zeroed, and how they were chosen."""

    k: int | None  # top-K over the model's decoder linears (None: per-tensor fraction)
    pruned: list[tuple[str, tuple[int, int]]]  # (parameter name, storage index)
    min_abs: float  # the smallest |w| zeroed
    fraction: float | None = None  # the top fraction of each decoder linear (None: top-K)
    values: list[float] = field(default_factory=list)  # the pristine values, as `pruned`
    excluded: list[tuple[int, int, int]] = field(default_factory=list)  # down_proj keys never zeroed

    @property
    def selection(self) -> str:
        if self.fraction is not None:
            return (f"top {self.fraction:g} of |w| in each decoder linear (at least one per tensor; "
                    f"the reference code's selection)")
        return f"top {self.k} of |w| over all the decoder linears together"

    def to_json(self) -> dict:
        """The control as `ablate --json` lists it: every zeroed coordinate with its pristine value."""
        return {"selection": self.selection, "mode": "per-tensor fraction" if self.fraction is not None else "model top-k",
                "fraction": self.fraction, "k": self.k, "count": len(self.pruned), "min_abs": self.min_abs,
                "excluded": [list(k) for k in self.excluded],
                "zeroed": [{"param": name, "layer": _layer_of(name), "index": list(idx), "value": value}
                           for (name, idx), value in zip(self.pruned, self.values)]}


def _layer_of(name: str) -> int | None:
    m = re.search(r"\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def detection_exclusions(detection) -> set[tuple[int, int, int]]:
    """Every weight the control must spare: each candidate (a super weight, a group member, or one
    judged harmless: all of them) and every writer weight of every massive channel."""
    keys = {c.key for c in detection.candidates}
    for m in detection.channels:
        for w in m.writers:
            if w.key is not None:
                keys.add(w.key)
    return keys


def prune_nonsw(session: Session, k: int | None = None, keep: set[tuple[int, int, int]] = frozenset(),
                fraction: float | None = None) -> NonSWControl:
    """Zero the largest-|w| *pristine* weights of the decoder's linears, except those in `keep`
    (down_proj coordinates (layer, row, col): pass `detection_exclusions` and the treatment's).

    `fraction`: the top `fraction` of each decoder linear, ceil(fraction·numel) weights of each
    tensor (the reference code's selection). `k`: the top K over all of them together. The paper's
    control. It is part of the ledger's state (a zero mask under the scalar edits and the
    quantization), so it composes with them in any order and is restored exactly.
    """
    import math

    import torch

    from swtui.core.model.offload import real_tensor

    if (k is None) == (fraction is None):
        raise UserInputError("the non-SW control takes either K (top-K over the model) or a per-tensor fraction")
    if k is not None and not 0 < k <= 10_000_000:
        raise UserInputError("--nonsw-control K must be between 1 and 10,000,000")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 0.01):
        raise UserInputError("--nonsw-control-fraction must be in (0, 0.01]")
    keep_idx = {(session.adapter.site(k[0]).weight_name, session.adapter.site(k[0]).index_of(*k[1:])) for k in keep}
    linears = session.adapter.decoder_linears()
    chosen: dict[int, list[int]] = {}
    picked: list[tuple[float, float, int, int]] = []  # (|w|, w, tensor, flat)
    with session.ledger.pristine_weights():
        shapes = [module.weight.shape for _, module in linears]
        tops = []
        for t_id, (name, module) in enumerate(linears):
            # a streamed layer is read from the files (pristine here), one tensor at a time
            w = real_tensor(session.model, f"{name}.weight", module.weight.detach()).reshape(-1)
            spared = sum(1 for n, _ in keep_idx if n == f"{name}.weight")
            want = k if k is not None else max(1, math.ceil(fraction * w.numel()))
            top = torch.topk(w.float().abs(), min(want + spared, w.numel()))
            vals = w[top.indices].float().cpu().tolist()
            tops.append((want, [(a, v, t_id, i) for a, v, i in zip(top.values.cpu().tolist(), vals,
                                                                     top.indices.cpu().tolist())]))
    cols_of = lambda t: shapes[t][1]  # noqa: E731
    spare = lambda t, flat: (f"{linears[t][0]}.weight", (flat // cols_of(t), flat % cols_of(t))) in keep_idx  # noqa: E731
    if k is not None:
        pool = sorted((item for _, items in tops for item in items), key=lambda x: -x[0])
        picked = [item for item in pool if not spare(item[2], item[3])][:k]
    else:
        for want, items in tops:
            picked += [item for item in items if not spare(item[2], item[3])][:want]
    pruned, values = [], []
    for _, value, t_id, flat in picked:
        chosen.setdefault(t_id, []).append(flat)
        pruned.append((f"{linears[t_id][0]}.weight", (flat // cols_of(t_id), flat % cols_of(t_id))))
        values.append(value)
    session.ledger.set_zeros({f"{linears[t][0]}.weight": torch.tensor(sorted(f), dtype=torch.long)
                              for t, f in chosen.items()})
    return NonSWControl(k, pruned, min((abs(v) for v in values), default=0.0), fraction, values,
                        sorted(keep))
