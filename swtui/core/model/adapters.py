"""Architecture adapters: find each decoder layer's MLP down projection and residual stream.

A super weight is always addressed as (layer, row, col) with row = output channel (hidden
dimension, D) and col = input channel (intermediate dimension, H), whatever the storage:
`nn.Linear` stores weight as [out, in] = D×H, GPT-2's `Conv1D` stores it transposed, [in, out].
In a layer of fused experts (`swtui.core.model.moe`) the site is the experts module, its weight the
[E, D, H] `down_proj` parameter, and a weight is (layer, row, col, expert).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from swtui.core.errors import UnsupportedArchitecture, UserInputError

#: decoder-layer lists, tried in order (Llama/Mistral/Qwen/Gemma/OLMo/Phi-3, GPT-2/Falcon,
#: GPT-NeoX, OPT, multimodal Gemma3 wrappers)
LAYER_LISTS = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "transformer.layers",
)
#: the down projection, relative to a decoder layer
DOWN_PROJ_NAMES = ("mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h", "fc2", "mlp.fc2", "feed_forward.w2")
#: a norm applied to the MLP's output before it joins the residual stream (Gemma-2/3, OLMo-2, …),
#: relative to a decoder layer; where one sits, the MLP's write into the residual is its output
POST_FFN_NORM_NAMES = ("post_feedforward_layernorm", "post_ffw_norm", "post_mlp_layernorm", "post_ffn_norm")


@dataclass
class LayerSite:
    index: int
    layer_name: str
    layer: object
    down_name: str
    root: object  # the model: `down` is looked up by name, so module swaps (bitsandbytes) are seen
    transposed: bool  # True for Conv1D: weight is [in, out]
    out_features: int = 0
    in_features: int = 0
    post_norm_name: str | None = None  # the post-FFN norm, where the family has one
    experts: int = 0  # fused experts: how many (0: a dense down projection)
    block_name: str | None = None  # fused experts: the MLP block whose output is the layer's write

    @property
    def post_norm(self):
        return self.root.get_submodule(self.post_norm_name) if self.post_norm_name else None

    def __post_init__(self) -> None:
        w = self.weight
        if self.experts:
            self.experts = int(w.shape[0])
        rows, cols = w.shape[-2:]
        self.out_features, self.in_features = (cols, rows) if self.transposed else (rows, cols)

    @property
    def down(self):
        """The down projection module (fused experts: the experts module)."""
        return self.root.get_submodule(self.down_name)

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def weight(self):
        return self.down.down_proj if self.experts else self.down.weight

    @property
    def weight_name(self) -> str:
        return f"{self.down_name}.{'down_proj' if self.experts else 'weight'}"

    @property
    def block(self):
        return self.root.get_submodule(self.block_name) if self.block_name else None

    def index_of(self, row: int, col: int, expert: int | None = None) -> tuple[int, ...]:
        """Storage index of the (row=out, col=in) element (of expert `expert` in a fused layer)."""
        rc = (col, row) if self.transposed else (row, col)
        return (expert, *rc) if self.experts else rc


def _is_conv1d(module) -> bool:
    return type(module).__name__ == "Conv1D"


def _post_norm(modules: dict, layer_name: str) -> str | None:
    return next((f"{layer_name}.{n}" for n in POST_FFN_NORM_NAMES if f"{layer_name}.{n}" in modules), None)


def _has_weight(module) -> bool:
    w = getattr(module, "weight", None)
    return w is not None and getattr(w, "ndim", 0) == 2


class ModelAdapter:
    """Per-layer sites of a causal LM.

    `down_proj` is a glob over dotted module names in which `*` stays inside one segment:
    'model.layers.*.mlp.down_proj' matches layer 3's down_proj but not 'model.layers.3.x.mlp.down_proj'.
    """

    def __init__(self, model, down_proj: str | None = None):
        self.model = model
        self.arch = type(model).__name__
        modules = dict(model.named_modules())
        self.sites = self._from_pattern(modules, down_proj) if down_proj else self._discover(modules)
        if not self.sites:
            raise UnsupportedArchitecture(self._explain())

    def _discover(self, modules: dict) -> list[LayerSite]:
        from swtui.core.model.moe import EXPERTS_NAMES, force_eager, is_fused_experts

        for list_name in LAYER_LISTS:
            layers = modules.get(list_name)
            if layers is None or not hasattr(layers, "__len__") or len(layers) == 0:
                continue
            sites = []
            for i, layer in enumerate(layers):
                layer_name = f"{list_name}.{i}"
                for rel in DOWN_PROJ_NAMES:
                    down = modules.get(f"{layer_name}.{rel}")
                    if down is not None and _has_weight(down):
                        sites.append(LayerSite(i, layer_name, layer, f"{layer_name}.{rel}", self.model,
                                               _is_conv1d(down), post_norm_name=_post_norm(modules, layer_name)))
                        break
                else:
                    fused = next((f"{layer_name}.{rel}" for rel in EXPERTS_NAMES
                                  if is_fused_experts(modules.get(f"{layer_name}.{rel}"))), None)
                    if fused is None:
                        return []
                    experts = modules[fused]
                    sites.append(LayerSite(i, layer_name, layer, fused, self.model,
                                           bool(getattr(experts, "is_transposed", False)),
                                           post_norm_name=_post_norm(modules, layer_name),
                                           experts=int(experts.down_proj.shape[0]),
                                           block_name=fused.rpartition(".")[0]))
            if any(s.is_moe for s in sites):
                force_eager(self.model)  # the loop the probe reproduces, not a grouped-mm kernel
            return sites
        return []

    def _from_pattern(self, modules: dict, pattern: str) -> list[LayerSite]:
        found = []
        regex = re.compile("^" + re.escape(pattern).replace(r"\*", "[^.]*").replace(r"\?", "[^.]") + "$")
        for name, module in modules.items():
            if regex.match(name) and _has_weight(module):
                m = re.search(r"^(.*?\.(\d+))\.", name)
                if not m:
                    continue
                layer_name = m.group(1)
                found.append((int(m.group(2)), layer_name, name, module))
        if not found:
            raise UnsupportedArchitecture(
                f"--down-proj {pattern!r} matched no module with a 2-D weight under a numbered layer "
                f"(example names: {', '.join(list(modules)[1:6])})"
            )
        found.sort()
        layers = [ln for _, ln, _, _ in found]
        dup = next((ln for ln in layers if layers.count(ln) > 1), None)
        if dup is not None:
            raise UnsupportedArchitecture(f"--down-proj {pattern!r} matches several modules in {dup}; "
                                          "make it match one per layer")
        return [LayerSite(i, ln, modules[ln], n, self.model, _is_conv1d(m), post_norm_name=_post_norm(modules, ln))
                for i, (_, ln, n, m) in enumerate(found)]

    def _explain(self) -> str:
        return (
            f"{self.arch}: no decoder layers with an MLP down projection found. Looked for layer lists "
            f"{', '.join(LAYER_LISTS)} holding {', '.join(DOWN_PROJ_NAMES)}. "
            "Pass --down-proj PATTERN (e.g. 'model.layers.*.mlp.down_proj') to name them."
        )

    # -- queries ---------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.sites)

    def site(self, layer: int) -> LayerSite:
        if not 0 <= layer < len(self.sites):
            raise UserInputError(f"layer {layer} is out of range (0..{len(self.sites) - 1})")
        return self.sites[layer]

    @property
    def is_moe(self) -> bool:
        return any(s.is_moe for s in self.sites)

    def check_coords(self, layer: int, row: int, col: int, expert: int | None = None) -> LayerSite:
        site = self.site(layer)
        if site.is_moe:
            if expert is None:
                raise UserInputError(f"layer {layer} is a layer of {site.experts} fused experts: "
                                     "name the expert (layer, row, col, expert)")
            if not 0 <= expert < site.experts:
                raise UserInputError(f"expert {expert} is out of range for layer {layer} (0..{site.experts - 1})")
        elif expert is not None:
            raise UserInputError(f"layer {layer} has a dense down projection: it has no expert {expert}")
        if not 0 <= row < site.out_features:
            raise UserInputError(f"row {row} is out of range for layer {layer} (0..{site.out_features - 1})")
        if not 0 <= col < site.in_features:
            raise UserInputError(f"col {col} is out of range for layer {layer} (0..{site.in_features - 1})")
        return site

    def weight_value(self, layer: int, row: int, col: int, expert: int | None = None) -> float:
        site = self.check_coords(layer, row, col, expert)
        return float(site.weight[site.index_of(row, col, expert)])

    def coord_label(self, layer: int, row: int, col: int, expert: int | None = None) -> str:
        site = self.site(layer)
        if expert is not None:
            return f"{site.weight_name}[expert {expert}][{row}, {col}]"
        return f"{site.weight_name}[{row}, {col}]"

    def decoder_linears(self) -> list[tuple[str, object]]:
        """Every 2-D-weight linear (Linear or Conv1D) inside the decoder layers, by name."""
        import torch

        out = []
        for site in self.sites:
            for rel, mod in site.layer.named_modules():
                if rel and (isinstance(mod, torch.nn.Linear) or _is_conv1d(mod)) and _has_weight(mod):
                    out.append((f"{site.layer_name}.{rel}", mod))
        return out
