"""Channels first: massive residual activations, and who writes them.

A *massive activation* (Sun et al. 2024, "Massive Activations in Large Language Models"; the
super activation of Yu et al. is one) is a residual-stream entry h_l[t, c] far above that hidden
state's typical magnitude, at the same channel over many layers. Per decoder layer l, on the
probe prompt, an entry is massive when

    |h_l[t, c]| ≥ RATIO × median |h_l|   and   |h_l[t, c]| ≥ TOP_SHARE × max |h_l|

(the median over every token and channel of that layer's output: a within-layer statistic, so
layers that are all outliers do not hide each other; the second condition keeps the runner-up
channels of a layer whose real massive channel is 10× larger out). A channel is massive when it
is massive in at least MIN_LAYERS layers (persistence). Its token is the one where it peaks.

Its *writers* are the MLPs: layer l writes m_l[t, c] into the residual (the down projection's
output, or the post-FFN norm's output where the family has one). Each layer's signed share is
m_l[t, c] / h_peak[t, c]: positive shares carry the activation, negative ones cancel it. Within
a writing layer, the weight W[c, col] whose term x[t, col]·W[c, col] is the largest part of the
down projection's output y[t, c] is that layer's writer weight (with that share). Super weights are
looked for among the carriers' weights (see `swtui.core.detection.groups`).

One forward pass; this module never reads the catalog.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from swtui.core.defaults import MASSIVE_RATIO as RATIO, MASSIVE_TOP_SHARE as TOP_SHARE
from swtui.core.edits.hooks import HookSet, _first_tensor

# RATIO: an entry at least this many times its layer's median |h| …; TOP_SHARE: … and at least this
# share of its layer's largest |h| (said once in `defaults`: the impact check's runner reads them too)

#: a channel massive in at least this many layers (persistence)
MIN_LAYERS = 3
#: a layer whose |write| is at least this share of the peak is listed as a writer
WRITER_SHARE = 0.05
#: at most this many writers per channel (largest |share| first)
MAX_WRITERS = 8
#: at most this many massive channels (largest peak ratio first)
MAX_CHANNELS = 4

RULE = (f"|h[t,c]| ≥ {RATIO:g} × median |h| of the layer and ≥ {TOP_SHARE:g} × its max, "
        f"in ≥ {MIN_LAYERS} layers; writers: |MLP write| ≥ {WRITER_SHARE:g} × the peak")


@dataclass
class Writer:
    layer: int
    row: int  # the channel (down projection's output row)
    col: int | None  # the input channel whose term writes most of y[t, row] (None: packed weight)
    write: float  # the MLP's signed write into the residual at (t, row)
    share: float  # write / h_peak: > 0 carries the activation, < 0 cancels it
    weight_share: float | None  # x[t,col]·W[row,col] / y[t,row]

    @property
    def sign(self) -> int:
        return 1 if self.share > 0 else -1

    @property
    def role(self) -> str:
        return "carrier" if self.share > 0 else "canceller"

    @property
    def key(self) -> tuple[int, int, int] | None:
        return None if self.col is None else (self.layer, self.row, self.col)

    def to_dict(self) -> dict:
        return dict(asdict(self), sign=self.sign, role=self.role)


@dataclass
class MassiveChannel:
    channel: int
    token: int  # where it peaks
    first_layer: int  # the first layer where it is massive
    peak: float  # signed h at the peak
    peak_layer: int
    peak_ratio: float  # |peak| / the median |h| of the peak layer
    persist_layers: int  # layers in which it is massive
    writers: list[Writer] = field(default_factory=list)

    @property
    def carriers(self) -> list[Writer]:
        return [w for w in self.writers if w.share > 0]

    @property
    def cancellers(self) -> list[Writer]:
        return [w for w in self.writers if w.share < 0]

    def to_dict(self) -> dict:
        return dict(asdict(self), writers=[w.to_dict() for w in self.writers])


def find_massive(session, prompt: str, max_channels: int = MAX_CHANNELS) -> list[MassiveChannel]:
    """The massive residual channels of the current model on `prompt`, with their writers."""
    import torch

    from swtui.core.model.offload import real_tensor

    adapter = session.adapter
    hidden: dict[int, object] = {}
    writes: dict[int, object] = {}
    inputs: dict[int, object] = {}
    outputs: dict[int, object] = {}

    def layer_hook(i):
        def hook(module, args, output):
            hidden[i] = _first_tensor(output).detach()[0].float()
        return hook

    def down_hook(i, write_here: bool):
        def hook(module, args, output):
            inputs[i] = args[0].detach().reshape(-1, args[0].shape[-1])
            outputs[i] = _first_tensor(output).detach().reshape(-1, _first_tensor(output).shape[-1])
            if write_here:
                writes[i] = outputs[i]
        return hook

    def norm_hook(i):
        def hook(module, args, output):
            out = _first_tensor(output).detach()
            writes[i] = out.reshape(-1, out.shape[-1])
        return hook

    ids = session.encode(prompt)
    (names, ctx), = session.variant_runs(("current",))
    with ctx, HookSet() as hooks, torch.no_grad():
        for site in adapter.sites:
            hooks.add(site.layer.register_forward_hook(layer_hook(site.index)))
            hooks.add(site.down.register_forward_hook(down_hook(site.index, site.post_norm is None)))
            if site.post_norm is not None:
                hooks.add(site.post_norm.register_forward_hook(norm_hook(site.index)))
        session.model(input_ids=ids, use_cache=False)

    n = adapter.n_layers
    # per layer: which (token, channel) entries are massive
    massive: dict[int, dict[int, tuple[int, float, float]]] = {}  # channel -> layer -> (token, h, ratio)
    for i in range(n):
        h = hidden[i]
        a = h.abs()
        med = float(a.median())
        top = float(a.max())
        if med <= 0 or top <= 0:
            continue
        level = max(RATIO * med, TOP_SHARE * top)
        hits = (a >= level).nonzero().tolist()
        for t, c in hits:
            v = float(h[t, c])
            best = massive.setdefault(c, {}).get(i)
            if best is None or abs(v) > abs(best[1]):
                massive[c][i] = (t, v, abs(v) / med)
    found = []
    for c, per_layer in massive.items():
        if len(per_layer) < MIN_LAYERS:
            continue
        peak_layer = max(per_layer, key=lambda i: abs(per_layer[i][1]))
        token, peak, ratio = per_layer[peak_layer]
        found.append(MassiveChannel(channel=c, token=token, first_layer=min(per_layer), peak=peak,
                                    peak_layer=peak_layer, peak_ratio=ratio, persist_layers=len(per_layer)))
    found.sort(key=lambda m: -m.peak_ratio)
    found = found[:max_channels]
    for m in found:
        rows = []
        for i in range(n):
            w = float(writes[i][m.token, m.channel])
            share = w / m.peak
            if abs(share) < WRITER_SHARE:
                continue
            site = adapter.site(i)
            col = weight_share = None
            weight = getattr(site.down, "weight", None)
            if weight is not None and weight.ndim == 2 and weight.dtype.is_floating_point:
                weight = real_tensor(session.model, site.weight_name, weight.detach())
                w_row = (weight[:, m.channel] if site.transposed else weight[m.channel]).float()
                terms = inputs[i][m.token].float().to(w_row.device) * w_row
                j = int(terms.abs().argmax())
                y = float(outputs[i][m.token, m.channel])
                col, weight_share = j, (float(terms[j]) / y if y else None)
            rows.append(Writer(i, m.channel, col, w, share, weight_share))
        rows.sort(key=lambda w: -abs(w.share))
        m.writers = rows[:MAX_WRITERS]
    return found
