"""The one place that changes weights, and can put every original back bit-exactly.

Element edits (prune, scale) remember the pristine scalar; tensor edits (quantization) keep the
pristine tensor itself (the parameter's storage is swapped, not copied); module swaps
(bitsandbytes) remember the original module.
Composition: an element edit is always computed from the pristine scalar and re-applied on top of
any tensor edit, so prune-then-quantize and quantize-then-prune give the same weights, and
leaving quantization keeps the element edits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from swtui.core.errors import EditError, UserInputError


@dataclass
class ElementEdit:
    layer: int
    row: int
    col: int
    op: str  # "prune" | "scale"
    factor: float
    pristine: object  # 0-d tensor, the original value
    underlying: object  # 0-d tensor, the value under the edit (pristine or its quantized value)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "row": self.row, "col": self.col, "op": self.op, "factor": self.factor,
                "original": float(self.pristine)}


def check_factor(factor) -> float:
    try:
        value = float(factor)
    except (TypeError, ValueError):
        raise UserInputError(f"scale factor must be a number, not {factor!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UserInputError(f"scale factor must be finite, not {factor!r}")
    if abs(value) > 1e6:
        raise UserInputError(f"scale factor {value:g} is absurd (|factor| must be ≤ 1e6)")
    return value


class EditLedger:
    def __init__(self, model, adapter):
        self.model = model
        self.adapter = adapter
        self.elements: dict[tuple[int, int, int], ElementEdit] = {}
        self.tensors: dict[str, object] = {}  # param name -> pristine tensor (cpu)
        self.modules: dict[str, object] = {}  # module name -> original module
        self._params = dict(model.named_parameters())

    # -- element edits ----------------------------------------------------------------------
    def _weight(self, layer: int, row: int, col: int):
        site = self.adapter.check_coords(layer, row, col)
        if site.down_name in self.modules or getattr(site.down.weight, "dtype", None) is None:
            raise EditError("that weight lives in a packed (bitsandbytes) module; return to full precision first")
        return site, site.down.weight, site.index_of(row, col)

    def _write(self, edit: ElementEdit) -> None:
        import torch

        _, weight, idx = self._weight(edit.layer, edit.row, edit.col)
        with torch.no_grad():
            if edit.op == "prune":
                weight[idx] = 0
            else:
                weight[idx] = edit.pristine * edit.factor

    def _edit(self, layer: int, row: int, col: int, op: str, factor: float) -> ElementEdit:
        _, weight, idx = self._weight(layer, row, col)
        key = (layer, row, col)
        edit = self.elements.get(key)
        if edit is None:
            current = weight[idx].detach().clone()
            pristine = current
            name = self.adapter.site(layer).weight_name
            if name in self.tensors:
                pristine = self.tensors[name][idx].clone().to(current.device)
            edit = ElementEdit(layer, row, col, op, factor, pristine, current)
            self.elements[key] = edit
        edit.op, edit.factor = op, factor
        self._write(edit)
        return edit

    def prune(self, layer: int, row: int, col: int) -> ElementEdit:
        return self._edit(layer, row, col, "prune", 0.0)

    def scale(self, layer: int, row: int, col: int, factor) -> ElementEdit:
        return self._edit(layer, row, col, "scale", check_factor(factor))

    def restore(self, layer: int, row: int, col: int) -> bool:
        import torch

        edit = self.elements.pop((layer, row, col), None)
        if edit is None:
            return False
        _, weight, idx = self._weight(layer, row, col)
        with torch.no_grad():
            weight[idx] = edit.underlying
        return True

    def current_value(self, layer: int, row: int, col: int) -> float:
        _, weight, idx = self._weight(layer, row, col)
        return float(weight[idx])

    def pristine_value(self, layer: int, row: int, col: int) -> float:
        edit = self.elements.get((layer, row, col))
        if edit is not None:
            return float(edit.pristine)
        site = self.adapter.check_coords(layer, row, col)
        if site.weight_name in self.tensors:
            return float(self.tensors[site.weight_name][site.index_of(row, col)])
        if site.down_name in self.modules:  # swapped out for a packed module: read the original
            return float(self.modules[site.down_name].weight[site.index_of(row, col)])
        return self.current_value(layer, row, col)

    # -- tensor edits -----------------------------------------------------------------------
    def replace_tensor(self, name: str, new) -> None:
        """Make parameter `name` hold `new` (same shape and dtype), keeping the pristine storage."""
        import torch

        param = self._params.get(name)
        if param is None:
            raise EditError(f"no parameter named {name}")
        if new.shape != param.shape or new.dtype != param.dtype:
            raise EditError(f"{name}: replacement must be {tuple(param.shape)} {param.dtype}")
        with torch.no_grad():
            if name not in self.tensors:
                self.tensors[name] = self._pristine_of(name, param)
            param.data = new.to(param.device).contiguous()
            for edit in self._edits_in(name):
                idx = self.adapter.site(edit.layer).index_of(edit.row, edit.col)
                edit.underlying = param[idx].detach().clone()
                self._write(edit)

    def _pristine_of(self, name, param):
        """The parameter's own storage, with element edits undone (no copy)."""
        pristine = param.data
        for edit in self._edits_in(name):
            idx = self.adapter.site(edit.layer).index_of(edit.row, edit.col)
            pristine[idx] = edit.pristine.to(pristine.device)
        return pristine

    def _edits_in(self, name: str) -> list[ElementEdit]:
        return [e for e in self.elements.values() if self.adapter.site(e.layer).weight_name == name]

    def restore_tensor(self, name: str) -> None:
        import torch

        pristine = self.tensors.pop(name, None)
        if pristine is None:
            return
        param = self._params[name]
        with torch.no_grad():
            param.data = pristine
            for edit in self._edits_in(name):
                idx = self.adapter.site(edit.layer).index_of(edit.row, edit.col)
                edit.underlying = param[idx].detach().clone()
                self._write(edit)

    def restore_tensors(self) -> None:
        for name in list(self.tensors):
            self.restore_tensor(name)

    # -- module swaps -----------------------------------------------------------------------
    def swap_module(self, name: str, new_module) -> None:
        parent_name, _, attr = name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        if name not in self.modules:
            self.modules[name] = getattr(parent, attr)
        setattr(parent, attr, new_module)

    def restore_modules(self) -> None:
        for name, original in list(self.modules.items()):
            parent_name, _, attr = name.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, attr, original)
            del self.modules[name]

    # -- whole state ------------------------------------------------------------------------
    def restore_all(self) -> None:
        self.restore_modules()
        self.restore_tensors()
        for key in list(self.elements):
            self.restore(*key)

    @property
    def count(self) -> int:
        return len(self.elements) + len(self.tensors) + len(self.modules)

    def summary(self) -> list[dict]:
        return [e.to_dict() for e in self.elements.values()]

    def verify(self) -> list[str]:
        """Disagreements between the ledger and the tensors (empty when consistent)."""
        problems = []
        for edit in self.elements.values():
            try:
                _, weight, idx = self._weight(edit.layer, edit.row, edit.col)
            except EditError:
                continue
            want = 0.0 if edit.op == "prune" else float(edit.pristine * edit.factor)
            if float(weight[idx]) != want:
                problems.append(f"{edit.layer},{edit.row},{edit.col}: {float(weight[idx])} != {want}")
        return problems


def weights_hash(model) -> str:
    """SHA-256 over every parameter and buffer's bytes, in name order (tied tensors once)."""
    import torch

    h = hashlib.sha256()
    seen = set()
    for name, tensor in sorted(list(model.state_dict(keep_vars=True).items())):
        if tensor is None or tensor.data_ptr() in seen and tensor.numel():
            continue
        seen.add(tensor.data_ptr())
        t = tensor.detach()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        if t.numel():
            h.update(t.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()
