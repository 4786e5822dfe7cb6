"""Controls matched on the quantity the claim is about, several of them.

- **A weight** matters because it meets an input: its contribution is |x·w|, with x the largest
  |down_proj input| of its column over the probe's tokens (a[c] = max_t |x[t, c]|). Its controls
  are the `K` weights of the same tensor nearest to it in contribution (log distance; a stable sort,
  so ties break the same way on every device), outside every channel under study and every
  candidate: for a super weight these are mostly the other rows of its own outlier column. In a
  layer of fused experts the input per expert is not kept: controls there are matched on |w| within
  the same expert (said in `matched_on`).
- **A channel** matters because of what the MLPs write into it: its write energy is Σ_l Σ_t m_l[t, c]²
  over the probe (m_l: the down projection's output, or the post-FFN norm's). Its controls are the
  `K` channels nearest in write energy that are not massive and under no study.
- **An expert** matters by what it writes: controls are the `K` routed experts of the same layer
  nearest in max |down_proj output|, not super experts.

Each control carries its own magnitude, shown beside the candidate's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swtui.core.edits.hooks import HookSet, _first_tensor

#: controls per claim
K = 5


@dataclass(frozen=True)
class Control:
    """A control and its magnitude (the matched quantity)."""
    subject: tuple  # a weight key, (channel,), or (layer, expert)
    magnitude: float
    weight: float | None = None  # a weight control's |w|


def input_peaks(session, prompt: str, layers) -> dict:
    """{layer: a} with a[c] = max_t |down_proj input[t, c]| on `prompt`, the current model."""
    import torch

    layers = sorted(set(layers))
    seen: dict = {}

    def hook(i):
        def fn(module, args, output):
            x = args[0].detach()
            seen[i] = x.reshape(-1, x.shape[-1]).abs().amax(dim=0).float().cpu()
        return fn

    ids = session.encode(prompt)
    (names, ctx), = session.variant_runs(("current",))
    with ctx, HookSet() as hooks, torch.no_grad():
        for i in layers:
            site = session.adapter.site(i)
            if not site.is_moe:
                hooks.add(site.down.register_forward_hook(hook(i)))
        session.model(input_ids=ids, use_cache=False)
    return seen


def _tensor(session, layer: int, expert: int | None):
    from swtui.core.model.offload import real_tensor

    site = session.adapter.site(layer)
    w = real_tensor(session.model, site.weight_name, site.weight.detach()).float().cpu()
    if expert is not None:
        w = w[expert]
    return w.t() if site.transposed else w


def contribution(session, key, peaks: dict) -> tuple[float, str]:
    """A weight's matched magnitude: (|x·w| with its pristine value, "|x·w|"), or (|w|, "|w|")."""
    layer, row, col = key[:3]
    value = abs(session.ledger.pristine_value(*key))
    a = peaks.get(layer)
    if a is None or len(key) > 3:
        return value, "|w|"
    return float(a[col]) * value, "|x·w|"


def nearest(dist, k: int) -> list[int]:
    """The indices of the `k` smallest entries of the 1-d `dist`, ties by index: what a stable sort's
    first k are, without sorting the whole tensor (a layer's 884k weights on the demo: 74 ms a sort)."""
    import torch

    n = min(k, dist.numel())
    if n == 0:
        return []
    kth = torch.topk(dist, n, largest=False).values.max()
    within = torch.nonzero(dist <= kth).flatten()  # every tie of the k-th too, in index order
    return within[torch.sort(dist[within], stable=True).indices][:n].tolist()


def weight_controls(session, key, peaks: dict, exclude_rows, exclude_keys, k: int = K) -> list[Control]:
    """The `k` weights of `key`'s tensor nearest to it in contribution (see the module docstring)."""
    import torch

    layer, row, col = key[:3]
    expert = key[3] if len(key) > 3 else None
    w = _tensor(session, layer, expert).abs()
    target, _ = contribution(session, key, peaks)
    a = peaks.get(layer) if expert is None else None
    mag = w * a[None, :].to(w.dtype) if a is not None else w
    dist = (torch.log(mag.double().clamp_min(1e-30)) - math.log(max(target, 1e-30))).abs()
    rows = sorted({r for r in exclude_rows if 0 <= r < w.shape[0]} | {row})
    dist[rows] = float("inf")
    for kk in list(exclude_keys) + list(session.ledger.edits):
        same = kk[0] == layer and (kk[3] if len(kk) > 3 else None) == expert
        if same and 0 <= kk[1] < w.shape[0] and 0 <= kk[2] < w.shape[1]:
            dist[kk[1], kk[2]] = float("inf")
    flat = dist.reshape(-1)
    order = nearest(flat, k)
    out = []
    for i in order:
        if flat[i] == float("inf"):
            break
        r, c = divmod(i, w.shape[1])
        ckey = (layer, r, c) + (() if expert is None else (expert,))
        out.append(Control(ckey, float(mag[r, c]), float(w[r, c])))
    return out


def write_energy(session, prompt: str):
    """Per residual channel: Σ over layers and the probe's tokens of the MLP write squared."""
    import torch

    total: list = []

    def hook(module, args, output):
        y = _first_tensor(output).detach().float()
        e = y.reshape(-1, y.shape[-1]).square().sum(dim=0).cpu()
        total.append(e)

    ids = session.encode(prompt)
    (names, ctx), = session.variant_runs(("current",))
    with ctx, HookSet() as hooks, torch.no_grad():
        for site in session.adapter.sites:
            module = site.post_norm if site.post_norm is not None else (site.block if site.is_moe else site.down)
            hooks.add(module.register_forward_hook(hook))
        session.model(input_ids=ids, use_cache=False)
    return torch.stack(total).sum(dim=0)


def channel_controls(energy, channel: int, exclude, k: int = K) -> list[Control]:
    """The `k` channels nearest to `channel` in write energy, outside `exclude` (massive channels and
    channels under study)."""
    import torch

    e = energy.double()
    dist = (torch.log(e.clamp_min(1e-30)) - math.log(max(float(e[channel]), 1e-30))).abs()
    banned = sorted({c for c in exclude if 0 <= c < e.numel()} | {channel})
    dist[banned] = float("inf")
    order = nearest(dist, k)
    return [Control((c,), float(e[c])) for c in order if dist[c] != float("inf")]


def expert_controls(profile, layer: int, expert: int, exclude, k: int = K) -> list[Control]:
    """The `k` routed experts of `layer` nearest in max |down_proj output| to `expert` (a routed or
    the shared one) on the calibration (`expert_profile.ExpertProfile`), not in `exclude`; an expert
    no calibration token was routed to is no control (pruning it changes nothing there)."""
    rows = {int(r[0]): float(r[2]) for r in (profile.layers[layer].experts or [])}
    routed = {int(r[0]) for r in (profile.layers[layer].experts or []) if r[1] > 0}
    if expert not in rows:
        return []
    target = max(rows[expert], 1e-30)
    pool = sorted((abs(math.log(max(v, 1e-30)) - math.log(target)), e) for e, v in rows.items()
                  if e != expert and e >= 0 and e in routed and (layer, e) not in exclude)
    return [Control((layer, e), rows[e]) for _, e in pool[:k]]
