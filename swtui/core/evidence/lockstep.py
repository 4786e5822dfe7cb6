"""The layer-major pass: many forwards ("jobs") through a streamed model, each layer read once for all.

An ordinary forward runs layer 0 … L−1 for one batch; K batches are K passes over the weights. Here
every job's hidden states go through layer i, each under its own hooks (its arm's edits: row
corrections, write ablations, SA restores; or, for a solo arm, the ledger's state with its prunes,
re-applied to the live layer), before layer i is freed and layer i + 1 (read meanwhile) is put in
place. So the computation of each job is the ordinary forward's, layer call by layer call:

1. **capture**: the model's own forward runs with every decoder layer's `forward` swapped for a
   recorder, which keeps the arguments the model passes to each layer (position embeddings, masks
   — per layer, as families with sliding windows differ — and the embeddings themselves for layer
   0) and returns its input; it stops after the last layer. No layer weight is needed.
2. **layers**: for i in 0 … L−1, `layer_i(h, *args, **kwargs)` for every job that computes it
   (a job whose edits start at layer s begins at s with the baseline's cached output of s − 1).
3. **tail**: the model's forward again with every layer returning the job's last output (the
   plan's `skipped`), so the final norm and the head run exactly as in a full forward.

Same inputs, same weights, same batch composition, same hooks: the losses equal the in-memory
forwards' bit for bit (tests/core/test_stream.py). A job may measure something else than losses
(`measure`: ablate's stopword figures, a generation step's logits, nothing for a probe whose hooks
saw what it needs) and pass the forward other arguments (`kwargs`: a generation step's KV cache,
which the layers' calls write). `run_jobs` runs the same jobs as ordinary forwards in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from swtui.core.errors import check_cancel


@dataclass
class Job:
    """One forward's worth of rows: `ids` [n, T], computed from layer `start` (fed `prefix`, the raw
    output of layer start − 1, when start > 0) under `context()`; `done(results)` takes what
    `measure(session, ids)` makes of the output (None: its rows' per-token losses)."""
    ids: object
    start: int
    prefix: object
    context: Callable
    done: Callable[[list], None]
    measure: Callable | None = None
    kwargs: dict = field(default_factory=dict)  # the forward's other arguments (a generation step's cache)


class _Stop(Exception):
    pass


def _first(value):
    return value[0] if isinstance(value, tuple) else value


def capture(session, ids, forward_kwargs: dict | None = None) -> list:
    """[(args, kwargs)] the model passes to each decoder layer for input `ids` (and
    `forward_kwargs`: a KV cache, read here, written by the layers' calls) (no layer computed)."""
    import torch

    from swtui.core.evidence.metrics import _plain_head

    layers = [site.layer for site in session.adapter.sites]
    calls: list = [None] * len(layers)
    saved = []

    def recorder(i):
        def forward(*args, **kwargs):
            calls[i] = (args, kwargs)
            if i == len(layers) - 1:
                raise _Stop
            return args[0] if args else kwargs["hidden_states"]
        return forward

    for i, layer in enumerate(layers):
        saved.append(layer.__dict__.get("forward"))
        layer.forward = recorder(i)
    model = session.model
    try:
        with torch.no_grad():
            (model.base_model if _plain_head(model) else model)(input_ids=ids, **{"use_cache": False, **(forward_kwargs or {})})
    except _Stop:
        pass
    finally:
        for layer, forward in zip(layers, saved):
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward
    return calls


def run_pass(session, jobs: list[Job], cancel=None, look: int | None = None) -> None:
    """Every job through every decoder layer, one layer in memory at a time (see the module docstring)."""
    import torch

    from swtui.core.evidence.arms import skipped

    from swtui.core.evidence.metrics import check_head

    check_head(session)  # decided by ordinary forwards, never inside the pass (where no layer is read)
    stream = session.loaded.stream
    layers = [site.layer for site in session.adapter.sites]
    stream.release()
    stream.manual, stream.look = True, look
    stream.begin_pass()
    try:
        calls = [capture(session, job.ids, job.kwargs) for job in jobs]
        out: list = [job.prefix for job in jobs]
        with torch.no_grad():
            for i, layer in enumerate(layers):
                active = [k for k, job in enumerate(jobs) if job.start <= i]
                if not active:
                    continue
                stream.enter(i)
                for k in active:
                    check_cancel(cancel, "detection cancelled")
                    args, kwargs = calls[k][i]
                    h = _first(out[k]) if i > jobs[k].start or jobs[k].start > 0 else \
                        (args[0] if args else kwargs["hidden_states"])
                    with jobs[k].context():
                        stream.refresh()  # a solo arm's prunes on the live layer (no-op otherwise)
                        out[k] = layer(h, *args[1:], **kwargs) if args else \
                            layer(**{**kwargs, "hidden_states": h})
            stream.release()
            for job, last in zip(jobs, out):
                with skipped(session.adapter, len(layers), last):
                    job.done(_measured(session, job))
    finally:
        stream.release()
        stream.manual, stream.look = False, None


def _measured(session, job: Job) -> list:
    from swtui.core.evidence.arms import _losses

    return job.measure(session, job.ids) if job.measure is not None else _losses(session, job.ids, job.ids.shape[0])


def run_jobs(session, jobs: list[Job], cancel=None, look: int | None = None) -> int:
    """`jobs` on `session`: one layer-major pass on a streamed model, else one ordinary forward each
    (the same rows, hooks and measurement: the same results, bit for bit). Returns the passes over
    the weights it took."""
    from swtui.core.evidence.arms import skipped

    if not jobs:
        return 0
    if getattr(session, "streamed", False):
        check_cancel(cancel, "cancelled")
        run_pass(session, jobs, cancel, look)
        return 1
    for job in jobs:
        check_cancel(cancel, "cancelled")
        with job.context(), skipped(session.adapter, job.start, job.prefix):
            job.done(_measured(session, job))
    return len(jobs)
