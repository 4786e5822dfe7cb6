"""One forward pass with hooks that record, per decoder layer, the spikes of the down projection.

For every layer: max |down_proj input| (→ the super weight's col), max |down_proj output|
(→ its row) with their token positions, and max |residual stream| after the layer with its
channel. Where a post-FFN norm follows the down projection (Gemma-2/3, OLMo-2), the MLP's write into
the residual stream is that norm's output: its value at the output spike and the norm's gain on
that channel are recorded too. Reductions stay on the device; only a few numbers per layer reach
the host, in a few copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swtui.core.detection.layer_stats import LayerStats
from swtui.core.edits.hooks import HookSet, _first_tensor


@dataclass
class ProbeResult:
    prompt: str
    tokens: list[str]
    layers: list[LayerStats]

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "tokens": self.tokens, "layers": [s.to_dict() for s in self.layers]}

    @classmethod
    def from_dict(cls, data: dict) -> "ProbeResult":
        return cls(data["prompt"], list(data["tokens"]), [LayerStats(**d) for d in data["layers"]])


def _amax(t):
    """(max |t|, flat argmax, signed value) as 0-d device tensors, over (batch, token, channel).

    Per-token max and min along channels (vectorised reductions, no |t| temporary; on CPU
    `aminmax(dim=...)` is several times slower than the two), then one token row's argmax.
    """
    import torch

    t = t.detach()
    width = t.shape[-1]
    rows = t.reshape(-1, width)
    per_row = torch.maximum(rows.amax(dim=-1), rows.amin(dim=-1).neg())
    r = per_row.argmax()
    c = rows[r].abs().argmax()
    val = rows[r, c]
    return val.abs().float(), r * width + c, val.float()


def _attribution(x, y, weight, transposed: bool, flat_out_idx):
    """(c, share) as 0-d device tensors: argmax_c |x[t,c]·W[r,c]| at the output spike, and its share."""
    width = y.shape[-1]
    t, r = flat_out_idx // width, flat_out_idx % width
    x_row = x.reshape(-1, x.shape[-1])[t].float()
    # an offloaded weight is read from accelerate's map (CPU) while the layer ran on the GPU
    w_row = (weight[:, r.to(weight.device)] if transposed else weight[r.to(weight.device)]).float().to(x.device)
    terms = x_row * w_row
    c = terms.abs().argmax()
    total = y.reshape(-1, width)[t, r].float()
    return c, terms[c] / total


def probe_down_proj(model, adapter, input_ids, attention_mask=None, prompt: str = "", tokens=None) -> ProbeResult:
    """Run one forward pass of `input_ids` ([1, T]) and return per-layer spike statistics."""
    import torch

    install, finish = probe_parts(model, adapter)
    with install(), torch.no_grad():
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return finish(input_ids.shape[-1], prompt, tokens)


def probe_parts(model, adapter):
    """(install, finish) of one probe: `install()` is a context that hooks every decoder layer for
    one forward (an ordinary one, or one job of a layer-major pass: `swtui.core.detection.stream_probes`);
    `finish(seq, prompt, tokens)` makes the ProbeResult from what the hooks saw."""
    import contextlib

    import torch

    from swtui.core.model.offload import real_tensor

    found: dict[int, list] = {}
    writes: dict[int, object] = {}
    routed: dict[int, tuple] = {}  # fused layers: (spike expert, per-expert rows)

    def down_hook(i: int):
        site = adapter.site(i)

        def hook(module, args, output):
            x, y = args[0], _first_tensor(output)
            found.setdefault(i, [None, None, None, None, None])
            found[i][0], found[i][1] = _amax(x), x.shape[-1]
            found[i][2] = _amax(y)
            weight = getattr(module, "weight", None)
            if weight is not None and weight.ndim == 2 and weight.dtype.is_floating_point:
                weight = real_tensor(model, site.weight_name, weight.detach())  # offloaded: the real one
                found[i][4] = _attribution(x.detach(), y.detach(), weight, site.transposed, found[i][2][1])
            if site.post_norm is None:  # the down_proj output is the write
                writes[i] = (found[i][2][2], None)
        return hook

    def experts_hook(i: int):
        from swtui.core.model.moe import expert_io, experts_call, layer_spikes

        site = adapter.site(i)

        def hook(module, args, kwargs, output):
            hidden, top_k_index, _ = experts_call(args, kwargs)
            ios = expert_io(model, site.down_name, module, hidden, top_k_index)
            down = real_tensor(model, site.weight_name, module.down_proj.detach())
            spikes = layer_spikes(ios, down, site.transposed)
            found.setdefault(i, [None, None, None, None, None])
            found[i][0], found[i][1] = spikes.in_amax, ios[0].x.shape[-1]
            found[i][2], found[i][4] = spikes.out_amax, spikes.attr
            routed[i] = (spikes.expert, spikes.per_expert)
        return hook

    def block_hook(i: int):  # fused experts: the MoE block's output is the layer's write
        def hook(module, args, output):
            if adapter.site(i).post_norm is None:
                writes[i] = (_first_tensor(output).detach().reshape(-1)[found[i][2][1]].float(), None)
        return hook

    def post_norm_hook(i: int):
        def hook(module, args, output):
            w = _first_tensor(output).detach()
            flat = found[i][2][1]  # the down_proj output spike, flat over (tokens, channels)
            value = w.reshape(-1)[flat].float()
            # the norm's per-channel gain, read by normalizing a vector of ones (RMS 1): covers
            # `weight·x` and Gemma's `(1 + weight)·x` alike
            ones = torch.ones(1, w.shape[-1], dtype=args[0].dtype, device=args[0].device)
            gain = module.forward(ones).reshape(-1)[flat % w.shape[-1]].float()  # no hook re-entry
            writes[i] = (value, gain)
        return hook

    def layer_hook(i: int):
        def hook(module, args, output):
            h = _first_tensor(output)
            found.setdefault(i, [None, None, None, None, None])
            found[i][3] = _amax(h), h.shape[-1]
        return hook

    @contextlib.contextmanager
    def install():
        with HookSet() as hooks:
            for site in adapter.sites:
                if site.is_moe:
                    hooks.add(site.down.register_forward_hook(experts_hook(site.index), with_kwargs=True))
                    hooks.add(site.block.register_forward_hook(block_hook(site.index)))
                else:
                    hooks.add(site.down.register_forward_hook(down_hook(site.index)))
                hooks.add(site.layer.register_forward_hook(layer_hook(site.index)))
                if site.post_norm is not None:
                    hooks.add(site.post_norm.register_forward_hook(post_norm_hook(site.index)))
            yield

    return install, lambda seq, prompt="", tokens=None: _result(adapter, found, writes, routed, seq, prompt, tokens)


def _result(adapter, found: dict, writes: dict, routed: dict, seq: int, prompt: str, tokens) -> ProbeResult:
    import torch

    values, indices, widths, attrs = [], [], [], []
    for i in range(adapter.n_layers):
        (in_abs, in_idx, _), in_w, (out_abs, out_idx, out_val), ((r_abs, r_idx, _), r_w), attr = found[i]
        values.append(torch.stack([in_abs, out_abs, out_val, r_abs]))
        indices.append(torch.stack([in_idx, out_idx, r_idx]))
        widths.append((in_w, adapter.site(i).out_features, r_w))
        attrs.append(attr)
    # a few device->host copies for the whole table (float values, int64 flat indices, attributions)
    vals = torch.stack(values).cpu().double().tolist()
    idxs = torch.stack(indices).cpu().tolist()
    have = [a for a in attrs if a is not None]
    attr_vals = iter(torch.stack([torch.stack([c.float(), sh.float()]) for c, sh in have]).cpu().tolist()
                     if have else [])
    nan = torch.tensor(float("nan"))
    write_vals = torch.stack([torch.stack([v.cpu(), (g if g is not None else nan).cpu()])
                              for v, g in (writes[i] for i in range(adapter.n_layers))]).double().tolist()
    layers = []
    for i, ((in_abs, out_abs, out_val, r_abs), (in_idx, out_idx, r_idx), (in_w, out_w, r_w)) in enumerate(
            zip(vals, idxs, widths)):
        attr_col = attr_share = None
        if attrs[i] is not None:
            c, share = next(attr_vals)
            attr_col, attr_share = int(c), share
        layers.append(LayerStats(
            layer=i,
            in_max=in_abs, in_channel=in_idx % in_w, in_token=(in_idx // in_w) % seq,
            out_max=out_abs, out_channel=out_idx % out_w, out_token=(out_idx // out_w) % seq,
            out_value=out_val,
            resid_max=r_abs, resid_channel=r_idx % r_w,
            attr_col=attr_col, attr_share=attr_share,
            write_value=write_vals[i][0], norm_gain=None if math.isnan(write_vals[i][1]) else write_vals[i][1],
            expert=routed[i][0] if i in routed else None, experts=routed[i][1] if i in routed else None,
        ))
    return ProbeResult(prompt=prompt, tokens=list(tokens or []), layers=layers)
