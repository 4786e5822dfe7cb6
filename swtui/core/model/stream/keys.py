"""Which checkpoint tensors make each parameter of a model: transformers' own key mapping, per tensor.

A checkpoint's keys are mostly the model's parameter names, but not always: transformers 5 fuses
the per-expert projections of an MoE checkpoint (`experts.0.gate_proj.weight`, …) into one
`experts.gate_up_proj` parameter when it loads, renames legacy keys (`block_sparse_moe` → `mlp`)
and adds or strips the base-model prefix. Streaming must build the same tensors one decoder layer
at a time, so the mapping is worked out once here with transformers' own renaming and conversion
rules (`conversion_mapping`, `core_model_loading`), and each parameter's *recipe* says which
checkpoint tensors it is made of and which conversion (stack, concatenate, …) makes it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

from swtui.core.errors import ModelLoadError


@dataclass
class Recipe:
    """One parameter (or several, for a one-to-many conversion) from checkpoint tensors."""

    target: str  # the (first) parameter made
    sources: list = field(default_factory=list)  # [(source pattern or None, checkpoint key)], in load order
    converter: object = None  # a transformers WeightConverter (None: the one tensor, renamed at most)

    @property
    def keys(self) -> list[str]:
        return [k for _, k in self.sources]

    def make(self, read: Callable[[str], object], model) -> dict:
        """{parameter name: tensor}, each source read with `read(key)`."""
        if self.converter is None:
            (_, key), = self.sources
            return {self.target: read(key)}
        conv = copy.deepcopy(self.converter)
        for pattern, key in self.sources:
            conv.add_tensor(self.target, key, pattern, (lambda k=key: read(k)))
        out = conv.convert(self.target, model=model, config=model.config)
        return {name: (v[0] if isinstance(v, list) else v) for name, v in out.items()}


def _transforms(model):
    """(renamings, converters) transformers applies when it loads `model` (none before 5.x)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming
    except ImportError:
        return [], []
    mapping = get_model_conversion_mapping(model)
    return ([m for m in mapping if isinstance(m, WeightRenaming)],
            [m for m in mapping if isinstance(m, WeightConverter)])


def plan_recipes(model, keys) -> dict[str, Recipe]:
    """{first target parameter: Recipe} for every checkpoint key that makes a parameter of `model`
    (a model on the meta device is enough). Keys that make nothing are ignored, as transformers does."""
    meta = model.state_dict()
    renamings, converters = _transforms(model)
    try:
        from transformers.core_model_loading import dot_natural_key, rename_source_key
    except ImportError:
        dot_natural_key, rename_source_key = None, None
    by_pattern = {p: c for c in converters for p in c.source_patterns}
    recipes: dict[str, Recipe] = {}
    for key in sorted(keys, key=dot_natural_key or (lambda k: k)):
        target, pattern = key, None
        if rename_source_key is not None:
            target, pattern = rename_source_key(key, renamings, converters, model.base_model_prefix, meta)
            if target not in meta and key in meta:
                target, pattern = rename_source_key(key, [], [], model.base_model_prefix, meta)
        if target not in meta:
            continue
        recipe = recipes.setdefault(target, Recipe(target, [], by_pattern[pattern] if pattern else None))
        if recipe.converter is None and recipe.sources:
            raise ModelLoadError(f"checkpoint keys {recipe.sources[0][1]} and {key} both make {target}")
        recipe.sources.append((pattern, key))
    return recipes
