"""The streamed decoder layers: each one's weights read from the files when it is needed, freed after.

The model is built on the meta device; its embeddings, final norm and LM head are held. A decoder
layer's parameters stay meta tensors until `enter(i)` puts layer i in place: its tensors, read by a
reader thread while the previous layer computed, with the ledger's current state applied to them
(`overlay`: zero masks, pruned experts, scalar edits, computed from the pristine values just read).
Entering layer i frees layer i − 1 first and starts reading layer i + 1, so at most two layers'
weights are alive: the one computing and the one being read. Entering the layer already in place
does nothing: the layer-major pass (`swtui.core.evidence.lockstep`) runs every arm of a look through
layer i before it moves on, and reads each layer once for all of them.

An ordinary forward (the probe, generation) enters each layer from a forward pre-hook on it; a hook
on the layer list's owner frees the last one when the forward ends. Nothing is ever written back:
an edit is state in the ledger, applied on each read, so a cancelled pass leaves nothing half-edited.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

from swtui.core.errors import ModelLoadError, check_cancel
from swtui.core.model.stream.shards import flat_index


@dataclass
class StreamStats:
    """What the stream read since it was opened (or since `reset`)."""
    layer_reads: int = 0  # layers put in place
    bytes_read: int = 0
    read_seconds: float = 0.0  # the reader thread's time
    wait_seconds: float = 0.0  # the compute thread waiting for a layer still being read
    wasted_reads: int = 0  # read ahead and never used (a pass cut short)
    reads: dict = field(default_factory=dict)  # layer -> times read

    def to_json(self) -> dict:
        return {"layer_reads": self.layer_reads, "bytes_read": self.bytes_read,
                "read_seconds": round(self.read_seconds, 3), "wait_seconds": round(self.wait_seconds, 3),
                "wasted_reads": self.wasted_reads}


@dataclass(frozen=True)
class LayerEvent:
    """Progress after layer `layer` was put in place (of `layers`), in the pass that began at `t0`."""
    layer: int
    layers: int
    pass_bytes: int  # read in this pass so far
    layer_bytes: int  # one whole pass
    total_bytes: int  # read since the stream was opened
    elapsed: float  # seconds into this pass
    look: int | None = None  # the evaluation plan's look (None: an ordinary forward)

    @property
    def eta(self) -> float | None:
        done = self.layer + 1
        return self.elapsed * (self.layers - done) / done if done > 0 else None

    def text(self) -> str:
        eta = self.eta
        where = "" if self.look is None else f"look {self.look + 1}, "
        return (f"streaming {where}layer {self.layer + 1}/{self.layers}: {self.pass_bytes / 1e9:.2f}/"
                f"{self.layer_bytes / 1e9:.2f} GB this pass, {self.total_bytes / 1e9:.1f} GB in all"
                + ("" if eta is None else f", ETA {eta:.0f} s"))


@dataclass
class _Read:
    layer: int
    tensors: dict  # param name -> Parameter (on the device, in the parameter's dtype), pristine
    nbytes: int
    event: object = None  # CUDA: the copy's event


class LayerStream:
    """The streamed decoder layers of `model` (see the module docstring)."""

    def __init__(self, model, index, recipes: dict, list_name: str, device, dtype) -> None:
        import torch

        self.model = model
        self.index = index
        self.device = torch.device(device)
        self.dtype = dtype
        self.pin = self.device.type == "cuda"
        self.layers = list(model.get_submodule(list_name))
        owner = list_name.rpartition(".")[0]
        self.owner = model.get_submodule(owner) if owner else model
        params = dict(model.named_parameters())
        self._meta = dict(params)  # the meta placeholders, put back when a layer is freed
        self._slots = _slots(model)
        self._names = [[n for n in params if n.startswith(f"{list_name}.{i}.")] for i in range(len(self.layers))]
        self._recipes = [[r for t, r in recipes.items() if t.startswith(f"{list_name}.{i}.")]
                         for i in range(len(self.layers))]
        self._of = {r.target: r for rs in self._recipes for r in rs}
        self.layer_bytes = [sum(index.entries[k].nbytes for r in rs for k in r.keys) for rs in self._recipes]
        #: the ledger's state: indices(name, shape) -> flat positions it sets, overlay(name, tensor) sets them
        self.indices: Callable | None = None
        self.overlay: Callable | None = None
        self.state_version: Callable[[], int] = lambda: 0
        self._pristine = 0
        self.cancel: threading.Event | None = None  # checked before each layer
        self.on_layer: Callable[[LayerEvent], None] | None = None
        self.manual = False  # the layer-major pass drives enter/free itself
        self.look: int | None = None
        self.stats = StreamStats()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="swtui-stream")
        self._pending: tuple[int, Future] | None = None
        self._live: int | None = None
        self._live_version = None
        self._saved: dict = {}  # name -> (flat positions, pristine values there) of the live layer
        self._made: list = []  # (layer, weakref) of every tensor read: what is still alive
        self._lock = threading.Lock()
        self.peak_live = 0  # most layers with live tensors at once
        self._pass_bytes = 0
        self._t0 = time.perf_counter()
        self._copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._hooks = [self.owner.register_forward_pre_hook(self._begin),
                       self.owner.register_forward_hook(self._end, always_call=True)]
        for i, layer in enumerate(self.layers):
            self._hooks.append(layer.register_forward_pre_hook(lambda m, a, i=i: self._pre(i)))

    # -- what the rest of swtui asks ----------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def pass_bytes(self) -> int:
        return sum(self.layer_bytes)

    def streams(self, name: str) -> bool:
        """True for a parameter that lives in the files (a decoder layer's)."""
        return any(name in names for names in self._names)

    @contextlib.contextmanager
    def pristine(self) -> Iterator[None]:
        """Layers put in place while inside get the weights as stored (no edits)."""
        self._pristine += 1
        try:
            yield
        finally:
            self._pristine -= 1

    def read_param(self, name: str, edited: bool = True):
        """Parameter `name` as the model computes with it now (`edited`: with the ledger's state,
        unless inside `pristine`), read from the files, on the CPU."""
        t = self._recipe(name).make(self.index.read, self.model)[name].to(self._meta[name].dtype)
        if edited and self.overlay is not None and not self._pristine:
            self.overlay(name, t)
        return t

    def element(self, name: str, idx: tuple):
        """W_pristine[idx] of parameter `name`, a 0-d CPU tensor (one element read where it can be)."""
        recipe = self._recipe(name)
        meta = self._meta[name]
        if recipe.converter is None and tuple(self.index.entries[recipe.keys[0]].shape) == tuple(meta.shape):
            return self.index.read_element(recipe.keys[0], flat_index(idx, meta.shape)).to(meta.dtype)
        return self.read_param(name, edited=False)[idx].clone()

    def live_layers(self) -> set[int]:
        """Layers some of whose read tensors are still alive (in place, read ahead, or held elsewhere)."""
        with self._lock:
            self._made = [(i, r) for i, r in self._made if r() is not None]
            return {i for i, _ in self._made}

    def enter(self, i: int) -> None:
        """Put layer i in place (nothing when it is), freeing the one before and reading ahead."""
        if self._live == i:
            self.refresh()
            return
        check_cancel(self.cancel, "cancelled")
        self.free()
        got = self._take(i)
        if i + 1 < len(self.layers):
            self._submit(i + 1)
        if got.event is not None:
            import torch

            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(got.event)
            for t in got.tensors.values():
                t.record_stream(compute)
        for name, t in got.tensors.items():
            _place(self._slots[name], t)
        self._live = i
        self._apply()
        self.peak_live = max(self.peak_live, len(self.live_layers()))
        self.stats.layer_reads += 1
        self.stats.bytes_read += got.nbytes
        self.stats.reads[i] = self.stats.reads.get(i, 0) + 1
        self._pass_bytes += got.nbytes
        if self.on_layer is not None:
            self.on_layer(LayerEvent(i, len(self.layers), self._pass_bytes, self.pass_bytes, self.stats.bytes_read,
                                     time.perf_counter() - self._t0, self.look))

    def refresh(self) -> None:
        """Re-apply the ledger's state to the live layer when it changed since it was applied (a
        solo arm's prunes): its pristine values put back where the last state set them, then the new."""
        if self._live is None or self._live_version == self._version():
            return
        for name, (flat, values) in self._saved.items():
            self._data(name).view(-1)[flat] = values
        self._apply()

    def begin_pass(self) -> None:
        self._pass_bytes = 0
        self._t0 = time.perf_counter()

    def free(self) -> None:
        """Put the meta placeholders of the live layer back (its tensors go)."""
        if self._live is None:
            return
        for name in self._names[self._live]:
            _place(self._slots[name], self._meta[name])
        self._live, self._saved = None, {}

    def release(self) -> None:
        """Drop the layer in place and any read ahead (after a pass, or a cancelled one)."""
        self.free()
        self._drop_pending()

    def close(self) -> None:
        self.release()
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.index.close()

    # -- the state on the live layer ---------------------------------------------------------------
    def _version(self):
        return ("pristine", self._pristine > 0) if self._pristine else self.state_version()

    def _data(self, name: str):
        return self.model.get_parameter(name).data

    def _apply(self) -> None:
        """The ledger's state on the live layer, saving the pristine values it overwrites."""
        import torch

        self._saved = {}
        self._live_version = self._version()
        if self.overlay is None or self._pristine:
            return
        for name in self._names[self._live]:
            w = self._data(name)
            flat = self.indices(name, w.shape) if self.indices is not None else None
            if flat is None or flat.numel() == 0:
                continue
            flat = flat.to(w.device)
            self._saved[name] = (flat, w.view(-1)[flat].clone())
            with torch.no_grad():
                self.overlay(name, w)

    # -- reading -------------------------------------------------------------------------------
    def _recipe(self, name: str):
        recipe = self._of.get(name)
        if recipe is None:  # made by a one-to-many conversion whose first target is another name
            layer = next((i for i, names in enumerate(self._names) if name in names), None)
            recipe = next((r for r in self._recipes[layer] if name in r.make(self.index.read, self.model)), None) \
                if layer is not None else None
            if recipe is None:
                raise ModelLoadError(f"the checkpoint has no tensor that makes {name}")
            self._of[name] = recipe
        return recipe

    def _read(self, i: int) -> _Read:
        """Layer i's tensors, made from the files (the reader thread)."""
        import torch

        t0 = time.perf_counter()
        out = {}
        for recipe in self._recipes[i]:
            out.update(recipe.make(lambda k: self.index.read(k, pin=self.pin), self.model))
        missing = set(self._names[i]) - set(out)
        if missing:
            raise ModelLoadError(f"the checkpoint has no tensor for {sorted(missing)[0]}")
        event = None
        for name in list(out):
            meta = self._meta.get(name)
            if meta is None:
                raise ModelLoadError(f"the checkpoint makes {name}, which the model does not have")
            if tuple(out[name].shape) != tuple(meta.shape):
                raise ModelLoadError(f"{name}: the checkpoint's shape {tuple(out[name].shape)} is not the "
                                     f"model's {tuple(meta.shape)}")
            if self._copy_stream is not None:
                with torch.cuda.stream(self._copy_stream):
                    out[name] = out[name].to(self.device, non_blocking=True).to(meta.dtype)
            elif out[name].dtype != meta.dtype or out[name].device != self.device:
                out[name] = out[name].to(device=self.device, dtype=meta.dtype)
        if self._copy_stream is not None:
            event = torch.cuda.Event()
            event.record(self._copy_stream)
        # the very objects put in place: what `live_layers` follows is what the model holds
        out = {name: torch.nn.Parameter(t, requires_grad=False) for name, t in out.items()}
        with self._lock:
            self._made += [(i, weakref.ref(t)) for t in out.values()]
        self.peak_live = max(self.peak_live, len(self.live_layers()))
        self.stats.read_seconds += time.perf_counter() - t0
        return _Read(i, out, self.layer_bytes[i], event)

    def _submit(self, i: int) -> None:
        self._pending = (i, self._pool.submit(self._read, i))

    def _drop_pending(self) -> None:
        if self._pending is not None:
            _, future = self._pending
            self._pending = None
            if not future.cancel():
                with contextlib.suppress(Exception):
                    future.result()
                self.stats.wasted_reads += 1

    def _take(self, i: int) -> _Read:
        if self._pending is not None and self._pending[0] == i:
            _, future = self._pending
            self._pending = None
        else:  # nothing read ahead for this layer (a pass that did not start where it was expected)
            self._drop_pending()
            future = self._pool.submit(self._read, i)
        t0 = time.perf_counter()
        got = future.result()
        self.stats.wait_seconds += time.perf_counter() - t0
        return got

    # -- an ordinary forward ------------------------------------------------------------------------
    def _pre(self, i: int) -> None:
        if self.manual or "forward" in self.layers[i].__dict__:  # driven, or a cached prefix: not computed
            return
        self.enter(i)

    def _begin(self, module, args) -> None:
        if self.manual:
            return
        self.release()  # whatever a pass cut short left
        self.begin_pass()
        first = next((i for i, layer in enumerate(self.layers) if "forward" not in layer.__dict__), None)
        if first is not None:
            self._submit(first)

    def _end(self, module, args, output) -> None:
        if not self.manual:
            self.release()


def _slots(model) -> dict:
    """{parameter name: [(module, attribute)]}: every place a parameter sits (tied ones, several)."""
    where: dict = {}
    for module in model.modules():
        for attr, p in module._parameters.items():
            if p is not None:
                where.setdefault(id(p), []).append((module, attr))
    return {n: where[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}


def _place(slots, param) -> None:
    for module, attr in slots:
        module._parameters[attr] = param
