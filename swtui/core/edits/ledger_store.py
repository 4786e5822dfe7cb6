"""How the ledger keeps and puts back tensors: the pristine copy of a rewritten tensor, a dense
rewrite written in place (or into accelerate's offload map), a packed module swapped in for the
original, and the pristine model put in place for a while (`pristine_weights`).

`TensorStore` is the storage half of `ledger.EditLedger` (which decides *what* each tensor should
be from the state); it reads and writes the ledger's `_saved`, `_swapped`, `_params`, `corrections`,
`_edits` and `_scalars`, and never decides a value itself.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class TensorStore:
    def _save(self, name: str):
        """The pristine tensor of `name` (on the CPU), saved the first time it is rewritten."""
        if name in self._saved:
            return self._saved[name]
        slot = self._slot(name)
        if slot is not None:  # offloaded: never written in place, so what the map holds is pristine
            self._saved[name] = slot.read()
            return self._saved[name]
        data = self._params[name].data
        pristine = data if data.device.type == "cpu" else data.to("cpu", copy=True)
        for key in self._keys_in(name, self._edits):  # undo the scalar edits written in place
            _, idx = self._site_idx(key)
            pristine[idx] = self._scalars[key]
        self._saved[name] = pristine
        return pristine

    def _write_dense(self, name: str, new) -> None:
        # a dense tensor holds every scalar itself: a packed layer's exact add-backs go with the pack
        for key in [k for k in self.corrections if self._weight_name(k) == name]:
            del self.corrections[key]
        slot = self._slot(name)
        if slot is not None:
            slot.write(new.contiguous())  # an override in accelerate's map; the files stay pristine
            return
        module_name = name.rpartition(".")[0]
        if module_name in self._swapped:
            self._unswap(module_name)
        param = self._params[name]
        saved = self._saved[name]
        if param.data.numel() != new.numel() or param.data.data_ptr() == saved.data_ptr():
            param.data = new.contiguous()  # a placeholder, or the CPU pristine storage set aside
        else:
            param.data.copy_(new)

    def _unrewrite(self, name: str) -> None:
        module_name = name.rpartition(".")[0]
        if module_name in self._swapped:
            self._unswap(module_name)
        for key in [k for k in self.corrections if self._weight_name(k) == name]:
            del self.corrections[key]
        pristine = self._saved.pop(name, None)
        if pristine is None:
            return
        slot = self._slot(name)
        if slot is not None:
            slot.write(pristine) if slot.in_memory else slot.drop()
            return
        param = self._params[name]
        if param.data.device.type == "cpu" or param.data.numel() != pristine.numel():
            param.data = pristine.to(param.data.device)  # CPU: the original storage, no copy
        else:
            param.data.copy_(pristine)

    def _parent(self, module_name: str):
        parent_name, _, attr = module_name.rpartition(".")
        return (self.model.get_submodule(parent_name) if parent_name else self.model), attr

    def _swap(self, module_name: str, new_module) -> None:
        parent, attr = self._parent(module_name)
        if module_name not in self._swapped:
            original = getattr(parent, attr)
            self._swapped[module_name] = original
            # the pristine tensor is saved (CPU); the original module keeps an empty placeholder
            original.weight.data = original.weight.data.new_empty(0)
        setattr(parent, attr, new_module)

    def _unswap(self, module_name: str) -> None:
        parent, attr = self._parent(module_name)
        setattr(parent, attr, self._swapped.pop(module_name))

    # -- the pristine model, temporarily -----------------------------------------------------------
    @contextlib.contextmanager
    def pristine_weights(self) -> Iterator[None]:
        """Put W_pristine in place for the duration (storage swaps and scalar writes, exact).

        Packed modules are swapped back to the original ones; on an accelerator the pristine
        tensors are copied there for the duration.
        """
        import torch

        undo: list[Callable[[], None]] = []
        streamed = self._stream.pristine() if self._stream is not None else contextlib.nullcontext()
        try:
            streamed.__enter__()  # streamed layers are read without the edits for the duration
            undo.append(lambda: streamed.__exit__(None, None, None))
            with torch.no_grad():
                for name, pristine in self._saved.items():
                    slot = self._slot(name)
                    if slot is not None:
                        live = slot.loader.state_dict.get(slot.key)
                        slot.write(pristine)
                        undo.append(lambda s=slot, v=live: s.write(v) if v is not None else s.drop())
                        continue
                    module_name = name.rpartition(".")[0]
                    param = self._params[name]
                    live = param.data
                    if module_name in self._swapped:
                        parent, attr = self._parent(module_name)
                        packed = getattr(parent, attr)
                        setattr(parent, attr, self._swapped[module_name])
                        undo.append(lambda p=parent, a=attr, m=packed: setattr(p, a, m))
                    if live.device.type == "cpu" or live.numel() != pristine.numel():
                        param.data = pristine.to(live.device)  # CPU: a storage swap, no copy
                        undo.append(lambda p=param, d=live: setattr(p, "data", d))
                    else:  # an accelerator: copy in place, so device memory stays flat
                        backup = live.to("cpu")
                        live.copy_(pristine)
                        undo.append(lambda d=live, b=backup: d.copy_(b))
                for key in self._edits:
                    site, idx = self._site_idx(key)
                    if site.weight_name in self._saved or self._streamed(site.weight_name):
                        continue
                    weight = site.weight
                    value = weight[idx].clone()
                    weight[idx] = self._scalars[key].to(weight.device)
                    undo.append(lambda w=weight, i=idx, v=value: w.__setitem__(i, v))
            yield
        finally:
            with torch.no_grad():
                for fn in reversed(undo):
                    fn()

