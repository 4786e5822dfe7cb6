"""Fused mixture-of-experts layers: where their experts live and what each expert computes.

transformers 5.x stores a layer's routed experts fused (`MixtralExperts`, `Qwen3MoeExperts`,
`OlmoeExperts`, `DeepseekV3Experts`, `GptOssExperts`, …): `down_proj` is one parameter of shape
[experts, hidden, intermediate] (GPT-OSS: transposed, [experts, intermediate, hidden], with a bias)
used with `F.linear` in a loop over the experts the tokens were routed to. Forward hooks on
`nn.Linear` see none of it, so the probe hooks the *experts module* (its call is
`experts(hidden [N, D], top_k_index [N, K], top_k_weights [N, K])` in every family) and recomputes,
from those inputs, each routed expert's down-projection input and output with the same ops as the
eager loop. The model's own forward is never rewritten; the eager loop is selected explicitly
(`force_eager`) so the grouped-mm kernels do not replace it.

A weight of a fused expert is addressed as (layer, row, col, expert): row = output (hidden)
channel, col = input (intermediate) channel of expert `expert`'s down projection. A layer's
*shared* expert (DeepSeek-V2/V3 `shared_experts`, Qwen2-MoE `shared_expert`: an ordinary MLP every
token passes through, beside the routed ones) is expert `SHARED` (-1) where whole experts are meant
(profiling, pruning); its weights are not sites.
"""

from __future__ import annotations

from dataclasses import dataclass

#: an experts module holds its down projection under this name, [E, D, I] (or [E, I, D] transposed)
EXPERTS_NAMES = ("mlp.experts", "block_sparse_moe.experts", "feed_forward.experts")
#: a MoE block's shared expert (an MLP with a `down_proj` Linear), relative to the block
SHARED_NAMES = ("shared_experts", "shared_expert")
#: the shared expert's number where whole experts are named: (layer, SHARED)
SHARED = -1


def shared_down_name(site) -> str | None:
    """The module name of a fused layer's shared-expert down projection (None: it has none)."""
    if not site.is_moe or site.block_name is None:
        return None
    for rel in SHARED_NAMES:
        name = f"{site.block_name}.{rel}.down_proj"
        try:
            module = site.root.get_submodule(name)
        except AttributeError:
            continue
        if getattr(getattr(module, "weight", None), "ndim", 0) == 2:
            return name
    return None


def expert_label(expert: int) -> str:
    """'expert 3', or 'the shared expert'."""
    return "the shared expert" if expert == SHARED else f"expert {expert}"


def is_fused_experts(module) -> bool:
    """A transformers experts module of the `use_experts_implementation` convention (its decorator sets
    `is_transposed`; called with the routing). Others (Llama 4's bmm over every expert, called with the
    hidden states alone) are not recognised, and their layers are not sites."""
    w = getattr(module, "down_proj", None)
    return (w is not None and getattr(w, "ndim", 0) == 3 and hasattr(module, "gate_up_proj")
            and hasattr(module, "is_transposed"))


def force_eager(model) -> None:
    """Select the experts' eager loop (the one the probe reproduces) where a model can switch."""
    setter = getattr(model, "set_experts_implementation", None)
    if setter is None:
        return
    try:
        setter("eager")
    except (ValueError, KeyError, AttributeError):  # a model without the switch
        pass


def _param(model, name: str, tensor):
    from swtui.core.model.offload import real_tensor

    return real_tensor(model, name, tensor.detach())


@dataclass
class ExpertIO:
    """One routed expert's down projection in one forward: tokens (flat positions), input, output."""

    expert: int
    tokens: object  # [n] flat token positions routed to it
    slots: object  # [n] which of the token's top-k slots
    x: object  # [n, I] down_proj input
    y: object  # [n, D] down_proj output (before the routing weight)


def routed(top_k_index, n_experts: int) -> list[tuple[int, object, object]]:
    """[(expert, token positions, top-k slots)] for every expert some token was routed to."""
    import torch

    out = []
    idx = top_k_index.detach()
    for e in torch.unique(idx).tolist():
        if not 0 <= e < n_experts:
            continue
        tokens, slots = torch.where(idx == e)
        out.append((int(e), tokens, slots))
    return out


def expert_io(model, experts_name: str, experts, hidden, top_k_index) -> list[ExpertIO]:
    """Each routed expert's down-projection input and output, recomputed as the eager loop does."""
    import torch
    from torch.nn import functional as F

    n_experts = experts.down_proj.shape[0]
    transposed = bool(getattr(experts, "is_transposed", False))
    gate_up = _param(model, f"{experts_name}.gate_up_proj", experts.gate_up_proj)
    down = _param(model, f"{experts_name}.down_proj", experts.down_proj)
    gu_bias = getattr(experts, "gate_up_proj_bias", None)
    down_bias = getattr(experts, "down_proj_bias", None)
    if gu_bias is not None:
        gu_bias = _param(model, f"{experts_name}.gate_up_proj_bias", gu_bias)
    if down_bias is not None:
        down_bias = _param(model, f"{experts_name}.down_proj_bias", down_bias)
    hidden = hidden.detach()
    out = []
    with torch.no_grad():
        for e, tokens, slots in routed(top_k_index, n_experts):
            state = hidden[tokens]
            gu_w, d_w = gate_up[e].to(state.device), down[e].to(state.device)
            if transposed:  # GPT-OSS: x @ W + b, its own gate (clamped, interleaved)
                gu = state @ gu_w
                if gu_bias is not None:
                    gu = gu + gu_bias[e].to(state.device)
                x = experts._apply_gate(gu)
                y = x @ d_w
                if down_bias is not None:
                    y = y + down_bias[e].to(state.device)
            else:
                gate, up = F.linear(state, gu_w).chunk(2, dim=-1)
                x = experts.act_fn(gate) * up
                y = F.linear(x, d_w)
            out.append(ExpertIO(e, tokens, slots, x, y))
    return out


def experts_call(args, kwargs):
    """(hidden, top_k_index, top_k_weights) of an experts module's call, however it was passed."""
    names = ("hidden_states", "top_k_index", "top_k_weights")
    alt = {"top_k_index": "router_indices", "top_k_weights": "routing_weights"}
    values = list(args[:3])
    for name in names[len(values):]:
        values.append(kwargs.get(name, kwargs.get(alt.get(name, name))))
    return tuple(values)


def _amax_rows(t):
    """(max |t|, flat index, signed value) of a 2-D tensor, as 0-d tensors."""
    flat = t.reshape(-1)
    i = flat.abs().argmax()
    return flat[i].abs().float(), i, flat[i].float()


@dataclass
class MoeLayerSpikes:
    """A fused layer's spikes over all its routed experts (the expert of the largest output wins)."""

    in_amax: tuple  # (abs, flat index over [tokens, I], value), 0-d tensors, as `probe._amax`
    out_amax: tuple  # (abs, flat index over [tokens, D], value): the largest output of any expert
    expert: int  # the expert whose down projection wrote `out_amax`
    attr: tuple | None  # (col, share) at the output spike, in that expert's down projection
    per_expert: list  # [[expert, routed tokens, max |out|, out channel, out token, max |in|, col], ...]


def layer_spikes(ios: list[ExpertIO], down, transposed: bool) -> MoeLayerSpikes | None:
    """Reduce the routed experts' down-projection inputs/outputs of one forward to the layer's
    spikes (positions are flat over the forward's tokens) and a row per routed expert."""
    import torch

    if not ios:
        return None
    readable = down is not None and down.dtype.is_floating_point
    rows, ins, outs = [], [], []
    for io in ios:
        a_in, a_out = _amax_rows(io.x), _amax_rows(io.y)
        ins.append(a_in)
        outs.append(a_out)
        t, r = a_out[1] // io.y.shape[-1], a_out[1] % io.y.shape[-1]
        col = _attribution(io, down, transposed, t, r)[0].float() if readable else a_in[0].new_tensor(-1.0)
        rows.append(torch.stack([a_out[0], r.float(), io.tokens[t].float(), a_in[0], col]))
    table = torch.stack(rows).cpu().tolist()  # one host copy per layer
    per_expert = [[io.expert, int(io.tokens.numel()), r[0], int(r[1]), int(r[2]), r[3], int(r[4]) if readable else None]
                  for io, r in zip(ios, table)]
    j_out = max(range(len(ios)), key=lambda k: table[k][0])
    j_in = max(range(len(ios)), key=lambda k: table[k][3])

    def globalize(io, amax, width):
        abs_, flat, val = amax
        return abs_, io.tokens[flat // width] * width + flat % width, val

    io = ios[j_out]
    width_out, width_in = io.y.shape[-1], ios[j_in].x.shape[-1]
    out_amax = globalize(io, outs[j_out], width_out)
    in_amax = globalize(ios[j_in], ins[j_in], width_in)
    attr = None
    if readable:
        local = outs[j_out][1]
        attr = _attribution(io, down, transposed, local // width_out, local % width_out)
    return MoeLayerSpikes(in_amax, out_amax, io.expert, attr, per_expert)


def _attribution(io: ExpertIO, down, transposed: bool, t, r):
    """(c, share): the input channel whose term x[t,c]·W_e[r,c] writes most of expert e's y[t,r]."""
    w = down[io.expert]
    w_row = (w[:, r.to(w.device)] if transposed else w[r.to(w.device)]).float().to(io.x.device)
    terms = io.x[t].float() * w_row
    c = terms.abs().argmax()
    return c, terms[c] / io.y[t, r].float()


def checked_experts(adapter, experts) -> frozenset:
    """{(layer, expert)} as the ledger keeps pruned experts; an expert that does not exist is refused
    (`SHARED` names the layer's shared expert, where it has one)."""
    from swtui.core.errors import EditError

    out = frozenset((int(layer), int(e)) for layer, e in experts)
    for layer, e in out:
        site = adapter.site(layer)
        if not site.is_moe:
            raise EditError(f"layer {layer} has no fused experts to prune")
        if e == SHARED and shared_down_name(site) is None:
            raise EditError(f"layer {layer} has no shared expert")
        if e != SHARED and not 0 <= e < site.experts:
            raise EditError(f"expert {e} is out of range for layer {layer} (0..{site.experts - 1})")
    return out


def expert_param(adapter, layer: int, expert: int) -> str:
    """The parameter a pruned expert zeroes: the fused down projection, or the shared expert's weight."""
    site = adapter.site(layer)
    return f"{shared_down_name(site)}.weight" if expert == SHARED else site.weight_name


def with_pruned_experts(adapter, zeros: dict, experts) -> dict:
    """The zero masks ({param name: flat indices}) with each pruned expert's whole down projection
    added: a pruned expert is Z of the ledger's W = Q(E(Z(W0))); a pruned shared expert, its whole
    down_proj weight (a shared expert may be wider than a routed one)."""
    import torch

    out = dict(zeros)
    for layer, e in sorted(experts):
        site = adapter.site(layer)
        name = expert_param(adapter, layer, e)
        if e == SHARED:
            idx = torch.arange(site.root.get_parameter(name).numel(), dtype=torch.long)
        else:
            per = site.out_features * site.in_features
            idx = torch.arange(e * per, (e + 1) * per, dtype=torch.long)
        out[name] = idx if name not in out else torch.cat([out[name].reshape(-1).long(), idx])
    return out
