"""The one place that changes weights: current weights are a *function* of the state.

State = (pristine weights, the set of scalar edits, extra zero masks, the quantizer).
Semantics (see README, "Semantics of edits"):

    W_current = Q( E( Z(W_pristine) ) )

Z zeroes the positions of the extra masks (the paper's non-super-weight control) and of the pruned
experts (a fused expert's whole down projection, `set_pruned_experts`), E applies the
scalar edits (prune → 0, scale s → fl(s · w_pristine) rounded once to the weight's dtype), Q is the
quantizer (round-to-nearest fake quantization or a bitsandbytes module swap) with the super
weights it was told to hold out kept at their edited, full-precision value.

Every change goes through `_transition`, which recomputes the affected tensors *from the pristine
ones*; the result therefore never depends on the order of operations. A streamed model
(`swtui.core.model.stream`) has no tensors to recompute: its decoder layers are read from the files for
each pass and the ledger's state is applied to them as they arrive (`_overlay`), so a transition
there only changes the state, and nothing is ever written back. A transition either
completes or, on any failure (cancel included), recomputes the previous state and re-raises:
nothing is half-applied and no original is ever dropped. Pristine copies of rewritten tensors
live on the CPU (on a CPU model the original storage itself is kept, no copy).
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

from swtui.core.edits.keys import Key, ScalarEdit, check_factor, edited_scalar, make_key
from swtui.core.errors import EditError, QuantizationError, UserInputError, check_cancel
from swtui.core.edits.ledger_store import TensorStore
from swtui.core.edits.stream_state import StreamedState
from swtui.core.model.offload import OffloadSlot, layer_stream, offload_slot


class Quantizer(Protocol):
    """What the ledger needs of a quantization scheme (see `quant_session`)."""

    config: object
    held: frozenset  # keys held out in full precision

    def targets(self, adapter) -> list[str]: ...  # module names it rewrites

    def dense(self, name: str, module, w): ...  # -> fake-quantized tensor like w (or None: packed)

    def packed(self, name: str, module, w): ...  # -> (new module, {key: exact correction})

    def effective_weight(self, module, row: int, col: int) -> float: ...  # W[row, col] as a packed module computes it

    def activation_hooks(self, session, rows, batch: int): ...  # -> a HookSet fake-quantizing activations


class EditLedger(StreamedState, TensorStore):
    def __init__(self, model, adapter):
        self.model = model
        self.adapter = adapter
        self._edits: dict[Key, ScalarEdit] = {}
        self._scalars: dict[Key, object] = {}  # pristine 0-d tensors (cpu) of keys ever edited
        self._zeros: dict[str, object] = {}  # param name -> flat indices zeroed (non-SW control)
        self._experts: frozenset = frozenset()  # (layer, expert) of fused experts pruned whole
        self.quantizer: Quantizer | None = None
        self._saved: dict[str, object] = {}  # param name -> pristine tensor, while rewritten
        self._swapped: dict[str, object] = {}  # module name -> original module, while packed
        self.corrections: dict[Key, float] = {}  # packed modules: exact add-backs of held-out SWs
        self._params = dict(model.named_parameters())
        self._slots: dict[str, OffloadSlot | None] = {}
        self._init_stream(layer_stream(model))

    def _slot(self, name: str) -> OffloadSlot | None:
        """Where an offloaded parameter's real values live (None for an ordinary tensor)."""
        if name not in self._slots:
            self._slots[name] = offload_slot(self.model, name)
        return self._slots[name]

    def _live(self, name: str):
        """The values the model computes with for dense parameter `name` (offloaded ones too)."""
        slot = self._slot(name)
        return self._params[name].data if slot is None else slot.read()

    # -- reading the state --------------------------------------------------------------------
    @property
    def edits(self) -> dict[Key, ScalarEdit]:
        return dict(self._edits)

    def edit(self, key: Key) -> ScalarEdit | None:
        return self._edits.get(tuple(key))

    @property
    def zero_masks(self) -> dict[str, object]:
        """{parameter name: flat indices zeroed} (the non-SW control), read-only."""
        return dict(self._zeros)

    @property
    def pruned_experts(self) -> frozenset:
        """(layer, expert) pairs whose whole down projection is zeroed (a pruned expert)."""
        return self._experts

    @property
    def rewritten(self) -> bool:
        """True while any whole tensor or module differs from its pristine form (quantized, masked)."""
        return bool(self._saved or self._swapped) or bool(self._stream is not None and self._stream_zeros)

    @property
    def count(self) -> int:
        return len(self._edits) + len(self._zeros) + len(self._experts) + (self.quantizer is not None)

    def summary(self) -> list[dict]:
        return [{"layer": k[0], "row": k[1], "col": k[2], **({"expert": k[3]} if len(k) > 3 else {}),
                 "op": e.op, "factor": e.factor, "original": self.pristine_value(*k)}
                for k, e in sorted(self._edits.items())]

    def is_packed(self, layer: int) -> bool:
        return self.adapter.site(layer).down_name in self._swapped

    def _site_idx(self, key: Key):
        site = self.adapter.check_coords(*key)
        return site, site.index_of(*key[1:])

    def pristine_scalar(self, key: Key):
        """W_pristine[key] as a 0-d CPU tensor in the weight's dtype."""
        key = tuple(key)
        if key in self._scalars:
            return self._scalars[key]
        site, idx = self._site_idx(key)
        if self._streamed(site.weight_name):  # the files hold the pristine weights
            return self._stream.element(site.weight_name, idx)
        if site.weight_name in self._saved:
            return self._saved[site.weight_name][idx].detach().cpu().clone()
        # not rewritten and never edited here: the live value is the pristine one
        return self._live(site.weight_name)[idx].detach().cpu().clone()

    def pristine_value(self, layer: int, row: int, col: int, expert: int | None = None) -> float:
        return float(self.pristine_scalar(make_key(layer, row, col, expert)))

    def edited_value(self, layer: int, row: int, col: int, expert: int | None = None) -> float:
        """The value under the scalar edits, before quantization."""
        key = make_key(layer, row, col, expert)
        edit = self._edits.get(key)
        p = self.pristine_scalar(key)
        return float(p if edit is None else edited_scalar(p, edit))

    def current_value(self, layer: int, row: int, col: int, expert: int | None = None) -> float:
        """The value the model computes with now (packed modules: measured, plus any add-back)."""
        key = make_key(layer, row, col, expert)
        site, idx = self._site_idx(key)
        if site.down_name in self._swapped:  # the quantizer that packed the module reads it back
            return self.quantizer.effective_weight(site.down, row, col) + self.corrections.get(key, 0.0)
        if self._streamed(site.weight_name):
            return self._streamed_value(key, site, idx)
        return float(self._live(site.weight_name)[idx])

    # -- changing the state -------------------------------------------------------------------
    def prune(self, layer: int, row: int, col: int, expert: int | None = None) -> None:
        self.set_edit(make_key(layer, row, col, expert), ScalarEdit("prune", 0.0))

    def scale(self, *key_and_factor, expert: int | None = None) -> None:
        """scale(layer, row, col, factor), or scale(*key, factor) for any key (a fused expert's
        (layer, row, col, expert) too), or scale(layer, row, col, factor, expert=e)."""
        *key, factor = key_and_factor
        self.set_edit(tuple(key) + (() if expert is None else (expert,)), ScalarEdit("scale", check_factor(factor)))

    def restore(self, layer: int, row: int, col: int, expert: int | None = None) -> bool:
        """Drop the scalar edit on (layer, row, col[, expert]); False when there was none."""
        key = make_key(layer, row, col, expert)
        if key not in self._edits:
            return False
        self.set_edit(key, None)
        return True

    def set_pruned_experts(self, experts) -> None:
        """Replace the set of pruned experts ({(layer, expert)}; empty: none). A pruned expert's
        whole down projection is zero, so it writes nothing (its router still picks it)."""
        from swtui.core.model.moe import checked_experts

        self._transition(self._edits, self._zeros, self.quantizer, experts=checked_experts(self.adapter, experts))

    def set_edit(self, key: Key, edit: ScalarEdit | None) -> None:
        key = tuple(key)
        self.adapter.check_coords(*key)
        edits = dict(self._edits)
        if edit is None:
            edits.pop(key, None)
        else:
            edits[key] = edit
        self._transition(edits, self._zeros, self.quantizer)

    def set_zeros(self, zeros: dict[str, object]) -> None:
        """Replace the extra zero masks ({param name: flat indices}); {} clears them."""
        for name in zeros:
            if name not in self._params:
                raise EditError(f"no parameter named {name}")
        self._transition(self._edits, dict(zeros), self.quantizer)

    def set_quantizer(self, quantizer: Quantizer | None, progress: Callable | None = None,
                      cancel: threading.Event | None = None) -> None:
        if quantizer is not None and self._stream is not None:
            raise UserInputError("quantization is not available on a streamed model (--stream): its layers are "
                                 "read from the files at every pass; load it in memory (or with --device-map auto)")
        self._transition(self._edits, self._zeros, quantizer, progress, cancel)

    def restore_all(self) -> None:
        self._transition({}, {}, None, experts=frozenset())

    # -- the transition ---------------------------------------------------------------------------
    def _weight_name(self, key: Key) -> str:
        return self.adapter.site(key[0]).weight_name

    def _affected(self, edits, zeros, quantizer, experts) -> list[str]:
        from swtui.core.model.moe import expert_param

        names = {self._weight_name(k) for k in set(edits) ^ set(self._edits)}
        names |= {expert_param(self.adapter, layer, e) for layer, e in experts ^ self._experts}
        names |= {self._weight_name(k) for k in set(edits) & set(self._edits) if edits[k] != self._edits[k]}
        names |= {n for n in set(zeros) | set(self._zeros) if zeros.get(n) is not self._zeros.get(n)}
        if quantizer is not self.quantizer:
            for q in (self.quantizer, quantizer):
                if q is not None:
                    names |= {self._target_param(m) for m in q.targets(self.adapter)}
        order = {name: i for i, name in enumerate(self._params)}
        return sorted(names, key=lambda n: order.get(n, -1))

    def _target_param(self, module_name: str) -> str:
        """The parameter a quantizer rewrites in module `module_name` (fused experts: down_proj)."""
        site = next((s for s in self.adapter.sites if s.is_moe and s.down_name == module_name), None)
        return site.weight_name if site is not None else f"{module_name}.weight"

    def _zeros_with(self, zeros: dict, experts: frozenset) -> dict:
        from swtui.core.model.moe import with_pruned_experts

        return with_pruned_experts(self.adapter, zeros, experts) if experts else zeros

    def _transition(self, edits, zeros, quantizer, progress=None, cancel=None, experts=None) -> None:
        experts = self._experts if experts is None else frozenset(experts)
        names = self._affected(edits, zeros, quantizer, experts)
        old = (self._edits, self._zeros_with(self._zeros, self._experts), self.quantizer)
        new = (edits, self._zeros_with(zeros, experts), quantizer)
        for key in edits:  # capture pristine scalars while the live tensor still holds them
            if key not in self._scalars:
                self._scalars[key] = self.pristine_scalar(key)
        done: list[str] = []
        try:
            for i, name in enumerate(names):
                check_cancel(cancel, "cancelled")
                done.append(name)
                self._materialize(name, *new)
                if progress is not None:
                    progress(name, (i + 1) / len(names))
        except BaseException:
            for name in done:  # the weights are a function of the state: recompute the old one
                self._materialize(name, *old)
            raise
        self._edits, self._zeros, self.quantizer, self._experts = dict(edits), dict(zeros), quantizer, experts
        self._streamed_state(new[1])
        for key in [k for k in self._scalars if k not in self._edits]:
            self._scalars.pop(key)

    def _keys_in(self, name: str, keys) -> list[Key]:
        return [k for k in keys if self._weight_name(k) == name]

    def _materialize(self, name: str, edits, zeros, quantizer) -> None:
        """Make parameter `name` equal F(pristine, edits, zeros, quantizer) restricted to it."""
        import torch

        module_name = name.rpartition(".")[0]
        quantized = quantizer is not None and module_name in quantizer.targets(self.adapter)
        if self._streamed(name):  # nothing to write: the state is applied to each read (`_overlay`)
            if quantized:
                raise QuantizationError(f"{module_name} is streamed (--stream): it cannot be quantized")
            return
        slot = self._slot(name)
        with torch.no_grad():
            if not quantized and name not in zeros and slot is not None and not self._keys_in(name, edits):
                self._unrewrite(name)  # offloaded and nothing left to apply: drop the override
                return
            if not quantized and name not in zeros and slot is None:
                self._unrewrite(name)
                param = self._params[name]
                for key in self._keys_in(name, set(edits) | set(self._edits)):
                    _, idx = self._site_idx(key)
                    value = self._scalars[key] if key not in edits else edited_scalar(self._scalars[key], edits[key])
                    param[idx] = value.to(param.device)
                return
            pristine = self._save(name)
            module = self._swapped.get(module_name) or self.model.get_submodule(module_name)
            w = pristine.to(pristine.device if slot is not None else self._params[name].device, copy=True)
            if name in zeros:
                w.view(-1)[zeros[name].to(w.device)] = 0
            for key in self._keys_in(name, edits):
                _, idx = self._site_idx(key)
                w[idx] = edited_scalar(self._scalars[key], edits[key]).to(w.device)
            if not quantized:
                self._write_dense(name, w)
                return
            new = quantizer.dense(module_name, module, w)
            if new is not None:
                self._write_dense(name, new)
                return
            if slot is not None:
                raise QuantizationError(f"{module_name} is offloaded (accelerate); bitsandbytes cannot pack it. "
                                        "Load it without offload, or use RTN")
            packed, corrections = quantizer.packed(module_name, module, w)
            for key in [k for k in self.corrections if self._weight_name(k) == name]:
                del self.corrections[key]
            self._swap(module_name, packed)
            self.corrections.update(corrections)

    # -- checks ---------------------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Disagreements between the ledger and the dense tensors (empty when consistent)."""
        problems = []
        for key, edit in self._edits.items():
            if self.is_packed(key[0]):
                continue
            quantized = self.quantizer is not None and key not in self.quantizer.held and \
                self.adapter.site(key[0]).down_name in self.quantizer.targets(self.adapter)
            if quantized:
                continue
            want = float(edited_scalar(self._scalars[key], edit))
            have = self.current_value(*key)
            if have != want:
                problems.append(f"{key}: {have} != {want}")
        return problems

