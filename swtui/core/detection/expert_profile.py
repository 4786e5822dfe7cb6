"""What every expert writes over calibration text: the statistic the super-experts rule ranks.

The Super Experts code (Su et al. 2025, github ZunhaiSu/Super-Experts-Profilling, `eval_utils.py`)
profiles a model on calibration text (C4 windows of 2,048 tokens, one forward each) with a hook on
every down projection whose name holds "experts": the routed experts and the shared experts, not
the dense MLP layers; per expert it keeps the largest |down_proj output| (before the routing
weight) over the windows. Here the routed experts' outputs are recomputed from the fused experts
module's call (`moe.expert_io`, the model's own ops) and the shared expert's `down_proj` is hooked
itself; per (layer, expert) the value is the max over every routed token and channel of every
window. (The reference's hook reads `output[0]`, which for a routed expert's [tokens, hidden]
output is its first routed token only; swtui takes every routed token, as the paper describes.)
An expert no calibration token was routed to is a row of value 0, as the reference's hook records
an expert called with no tokens: a short calibration must not shrink the population ranked.

The calibration is the first `CALIBRATION_WINDOWS` windows of the evaluation corpus's *held-out*
split (`corpus.build(split="held_out")`: the bundled WikiText-2 excerpt, or `--eval-file`), so the
experts are found on text disjoint from the windows their verdicts are measured on; a test may pass
its own windows of token ids.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from swtui.core.errors import UserInputError, check_cancel
from swtui.core.edits.hooks import HookSet, _first_tensor

#: windows of the held-out split profiled (64 tokens each: 1,008 tokens after BOS on the demo's tokenizer)
CALIBRATION_WINDOWS = 16
#: windows per forward
BATCH = 8


@dataclass
class ExpertLayer:
    """One decoder layer's experts (none for a dense layer). Each row:
    [expert, routed tokens, max |out|, out channel, out token, window] (token: within its window);
    expert `moe.SHARED` is the layer's shared expert (every token passes it)."""

    layer: int
    experts: list


@dataclass
class ExpertProfile:
    layers: list[ExpertLayer]  # every decoder layer, in order
    source: str  # what the calibration was, in words
    windows: int
    tokens: int

    def to_json(self) -> dict:
        return {"source": self.source, "windows": self.windows, "tokens": self.tokens}


def calibration_windows(session, text: str | None = None, windows=None) -> tuple[list, str]:
    """([T] id tensors, what they are): `windows` of token ids as given, else the first
    `CALIBRATION_WINDOWS` windows of the held-out split of `text` (None: the bundled corpus)."""
    import torch

    if windows is not None:
        out = [torch.as_tensor(w, dtype=torch.long).reshape(-1) for w in windows]
        if not out or any(w.numel() == 0 for w in out):
            raise UserInputError("calibration needs at least one non-empty window")
        return out, f"{len(out)} calibration windows"
    from swtui.core.evidence.corpus import build

    corpus = build(session.tokenizer, text, split="held_out", context_length=session.context_length)
    kept = corpus.windows[:CALIBRATION_WINDOWS]
    return [w.ids.reshape(-1) for w in kept], f"{corpus.name}: its first {len(kept)} windows of {corpus.window} tokens"


def _batches(windows: list) -> list[list[int]]:
    """Indices of `windows` in forwards of at most BATCH windows of one length."""
    out, by_len = [], {}
    for i, w in enumerate(windows):
        by_len.setdefault(int(w.numel()), []).append(i)
    for idx in by_len.values():
        out += [idx[k:k + BATCH] for k in range(0, len(idx), BATCH)]
    return out


def profile_experts(session, text: str | None = None, windows=None,
                    cancel: threading.Event | None = None) -> ExpertProfile:
    """Each expert's largest |down_proj output| over the calibration windows (the model as it is)."""
    import torch

    from swtui.core.model.moe import SHARED, expert_io, experts_call, shared_down_name

    ids_list, source = calibration_windows(session, text, windows)
    best: dict[tuple[int, int], list] = {}  # (layer, expert) -> [max, channel, token, window, routed]
    batch: list[int] = []  # the windows of the forward running
    width = [1]  # their length

    def keep(layer: int, expert: int, value: float, channel: int, flat_token: int, routed: int) -> None:
        row = best.setdefault((layer, expert), [0.0, None, None, None, 0])
        row[4] += routed
        if value > row[0]:
            row[:4] = [value, channel, flat_token % width[0], batch[flat_token // width[0]]]

    def amax(y, tokens=None):
        """[max |y|, channel, flat token] of a [n, D] output as one stacked tensor."""
        flat = y.reshape(-1)
        i = flat.abs().argmax()
        d = y.shape[-1]
        t = (i // d) if tokens is None else tokens[i // d]
        return torch.stack([flat[i].abs().float(), (i % d).float(), t.float()])

    def experts_hook(site):
        def hook(module, args, kwargs, output):
            hidden, top_k_index, _ = experts_call(args, kwargs)
            ios = expert_io(session.model, site.down_name, module, hidden, top_k_index)
            if ios:
                table = torch.stack([amax(io.y, io.tokens) for io in ios]).cpu().tolist()  # one host copy
                for io, (v, c, t) in zip(ios, table):
                    keep(site.index, io.expert, v, int(c), int(t), int(io.tokens.numel()))
        return hook

    def shared_hook(site):
        def hook(module, args, output):
            y = _first_tensor(output).detach()
            y = y.reshape(-1, y.shape[-1])
            v, c, t = amax(y).cpu().tolist()
            keep(site.index, SHARED, v, int(c), int(t), int(y.shape[0]))
        return hook

    adapter = session.adapter
    ((_, ctx),) = session.variant_runs(("current",))
    with ctx, HookSet() as hooks, torch.no_grad():
        for site in adapter.sites:
            if not site.is_moe:
                continue
            hooks.add(site.down.register_forward_hook(experts_hook(site), with_kwargs=True))
            shared = shared_down_name(site)
            if shared is not None:
                hooks.add(session.model.get_submodule(shared).register_forward_hook(shared_hook(site)))
        for idx in _batches(ids_list):
            check_cancel(cancel, "profiling experts cancelled")
            batch[:] = idx
            width[0] = int(ids_list[idx[0]].numel())
            ids = torch.stack([ids_list[i] for i in idx]).to(session.device)
            session.model(input_ids=ids, use_cache=False)
    layers = []
    for site in adapter.sites:
        rows = []
        if site.is_moe:
            every = list(range(site.experts)) + ([SHARED] if shared_down_name(site) is not None else [])
            for e in every:
                value, channel, token, window, routed = best.get((site.index, e), [0.0, None, None, None, 0])
                rows.append([e, routed, value, channel, token, window])
        layers.append(ExpertLayer(site.index, rows))
    return ExpertProfile(layers, source, len(ids_list), sum(int(w.numel()) for w in ids_list))
