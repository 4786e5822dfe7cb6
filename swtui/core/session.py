"""A loaded model plus everything done to it: adapter, ledger, interventions, named super weights.

Comparisons run *variants*: "base" (the pristine model) and "current" (all edits, quantization
and activation interventions). While every weight edit is a scalar, both variants run as two rows
of one batch: row "base" gets the exact activation correction that undoes each edit. Otherwise
(quantization) they run as two passes, the baseline on a temporarily restored copy of the weights.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from swtui.core.adapters import ModelAdapter
from swtui.core.errors import UserInputError
from swtui.core.hooks import HookSet, RowCorrection, SARestore, installed
from swtui.core.ledger import EditLedger, weights_hash
from swtui.core.loading import LoadedModel

VARIANTS = ("base", "current")


@dataclass
class SuperWeight:
    layer: int
    row: int
    col: int
    value: float
    label: str = ""
    source: str = "detected"  # "detected" | "user" | "snapshot"
    zscore: float | None = None
    in_act: float | None = None
    out_act: float | None = None
    sa_magnitude: float | None = None  # |super activation| at its layer, from the probe
    first_layer: int | None = None
    persist_layers: int | None = None
    ppl_base: float | None = None
    ppl_pruned: float | None = None
    is_super: bool | None = None  # None until impact is measured
    catalog: str | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.layer, self.row, self.col)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Session:
    loaded: LoadedModel
    down_proj: str | None = None
    adapter: ModelAdapter = field(init=False)
    ledger: EditLedger = field(init=False)
    super_weights: list[SuperWeight] = field(default_factory=list)
    sa_restore: set = field(default_factory=set)  # keys of super weights with SA restored
    #: extra hooks for the "current" variant: callables (session, rows) -> HookSet
    current_hook_factories: list[Callable] = field(default_factory=list)
    quant_config: dict | None = None

    def __post_init__(self) -> None:
        for param in self.loaded.model.parameters():  # an inspector never trains
            param.requires_grad_(False)
        self.adapter = ModelAdapter(self.loaded.model, self.down_proj)
        self.ledger = EditLedger(self.loaded.model, self.adapter)
        self._pristine_hash: str | None = None

    @property
    def model(self):
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        cfg = self.model.config
        for name in ("max_position_embeddings", "n_positions", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    def pristine_hash(self) -> str:
        """Hash of the weights as loaded (computed once, with all edits undone)."""
        if self._pristine_hash is None:
            with self.baseline_weights():
                self._pristine_hash = weights_hash(self.model)
        return self._pristine_hash

    def current_hash(self) -> str:
        return weights_hash(self.model)

    # -- text ---------------------------------------------------------------------------------
    def encode(self, text: str, max_tokens: int | None = None, notices: list | None = None):
        """[1, T] input ids on the model's device; empty text is refused, long text truncated."""
        import torch

        if not text or not text.strip():
            raise UserInputError("the prompt is empty")
        ids = self.tokenizer(text, add_special_tokens=True, return_tensors="pt").input_ids
        limit = max_tokens or self.context_length
        if ids.shape[-1] > limit:
            if notices is not None:
                notices.append(f"prompt truncated from {ids.shape[-1]} to {limit} tokens (context length)")
            ids = ids[:, :limit]
        return ids.to(self.device, dtype=torch.long)

    def token_strings(self, ids) -> list[str]:
        return [self.tokenizer.decode([int(t)]) for t in ids.reshape(-1).tolist()]

    # -- named super weights ------------------------------------------------------------------
    def find_super_weight(self, key: tuple[int, int, int]) -> SuperWeight | None:
        return next((sw for sw in self.super_weights if sw.key == key), None)

    def name_super_weight(self, layer: int, row: int, col: int, label: str = "", source: str = "user") -> SuperWeight:
        self.adapter.check_coords(layer, row, col)
        sw = self.find_super_weight((layer, row, col))
        if sw is None:
            sw = SuperWeight(layer, row, col, self.ledger.pristine_value(layer, row, col), label=label, source=source)
            self.super_weights.append(sw)
        elif label:
            sw.label = label
        return sw

    def state_of(self, key) -> str:
        edit = self.ledger.elements.get(key)
        text = "original" if edit is None else ("pruned" if edit.op == "prune" else f"scaled ×{edit.factor:g}")
        if key in self.sa_restore:
            text += " + SA restored"
        return text

    def set_sa_restore(self, layer: int, row: int, col: int, on: bool, sa_magnitude: float | None = None) -> None:
        """Toggle the paper's 'restore super activation' for one super weight."""
        self.adapter.check_coords(layer, row, col)
        sw = self.find_super_weight((layer, row, col))
        if on:
            if sa_magnitude is None and (sw is None or sw.sa_magnitude is None):
                raise UserInputError("restoring the super activation needs its magnitude: run detection first")
            if sw is None:
                sw = self.name_super_weight(layer, row, col)
            if sa_magnitude is not None:
                sw.sa_magnitude = sa_magnitude
            self.sa_restore.add((layer, row, col))
        else:
            self.sa_restore.discard((layer, row, col))

    # -- variants -----------------------------------------------------------------------------
    @property
    def batchable(self) -> bool:
        """True when base and current can run as rows of one batch (only scalar edits)."""
        return not self.ledger.tensors and not self.ledger.modules

    def _corrections(self, base_rows, current_rows) -> dict[int, list]:
        per_layer: dict[int, list] = {}
        if base_rows is not None:
            for (layer, row, col), edit in self.ledger.elements.items():
                delta = float(edit.pristine) - self.ledger.current_value(layer, row, col)
                if delta:
                    per_layer.setdefault(layer, []).append(RowCorrection(row, col, delta, base_rows))
        if current_rows is not None:
            for key in sorted(self.sa_restore):
                sw = self.find_super_weight(key)
                layer, row, col = key
                delta = float(self.ledger.pristine_value(*key)) - self.ledger.current_value(*key)
                threshold = 0.5 * (sw.sa_magnitude or 0.0)
                per_layer.setdefault(layer, []).append(SARestore(row, col, delta, threshold, current_rows))
        return per_layer

    @contextlib.contextmanager
    def _variant_hooks(self, base_rows, current_rows) -> Iterator[None]:
        extra = HookSet()
        try:
            if current_rows is not None:
                for factory in self.current_hook_factories:
                    hooks = factory(self, current_rows)
                    extra.add(hooks)
            with installed(self.adapter, self._corrections(base_rows, current_rows)):
                yield
        finally:
            extra.close()

    @contextlib.contextmanager
    def baseline_weights(self) -> Iterator[None]:
        """Temporarily put the pristine weights in place (storage swaps and scalar writes, exact)."""
        import torch

        ledger = self.ledger
        saved_tensors = {}
        saved_modules = dict(ledger.modules)
        saved_elements = {}
        params = dict(self.model.named_parameters())
        try:
            with torch.no_grad():
                for name, module in saved_modules.items():
                    parent_name, _, attr = name.rpartition(".")
                    current_mod = getattr(self.model.get_submodule(parent_name), attr)
                    saved_modules[name] = current_mod
                    setattr(self.model.get_submodule(parent_name), attr, module)
                for name, pristine in ledger.tensors.items():  # swap storages: no copies
                    saved_tensors[name] = params[name].data
                    params[name].data = pristine
                for key, edit in ledger.elements.items():
                    site = self.adapter.site(key[0])
                    if site.weight_name in saved_tensors:
                        continue
                    idx = site.index_of(key[1], key[2])
                    saved_elements[key] = site.down.weight[idx].detach().clone()
                    site.down.weight[idx] = edit.pristine
            yield
        finally:
            with torch.no_grad():
                for key, value in saved_elements.items():
                    site = self.adapter.site(key[0])
                    site.down.weight[site.index_of(key[1], key[2])] = value
                for name, value in saved_tensors.items():
                    params[name].data = value
                for name, module in saved_modules.items():
                    parent_name, _, attr = name.rpartition(".")
                    setattr(self.model.get_submodule(parent_name), attr, module)

    def variant_runs(self, variants=VARIANTS):
        """[(names, context)]: one batched run when possible, else one run per variant."""
        variants = tuple(variants)
        if len(variants) == 1 or not self.batchable:
            runs = []
            for name in variants:
                if name == "base":
                    runs.append(((name,), self._solo_base()))
                else:
                    runs.append(((name,), self._variant_hooks(None, (0,))))
            return runs
        base_rows = tuple(i for i, v in enumerate(variants) if v == "base")
        current_rows = tuple(i for i, v in enumerate(variants) if v == "current")
        return [(variants, self._variant_hooks(base_rows or None, current_rows or None))]

    @contextlib.contextmanager
    def _solo_base(self) -> Iterator[None]:
        if self.batchable:
            with self._variant_hooks((0,), None):
                yield
        else:
            with self.baseline_weights():
                yield

    def run_variants(self, fn: Callable[[int], list], variants=VARIANTS) -> dict:
        """Call fn(n_rows) -> list of per-row results under each run; returns {variant: result}."""
        out = {}
        for names, ctx in self.variant_runs(variants):
            with ctx:
                results = fn(len(names))
            out.update(zip(names, results))
        return out
