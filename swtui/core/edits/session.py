"""A loaded model plus everything done to it: adapter, ledger, interventions, named super weights.

Comparisons run *variants*: "base" (the pristine model) and "current" (all edits, quantization
and activation interventions). While every weight edit is a scalar, both variants run as two rows
of one batch: at each edited down_proj the "base" row is recomputed with the pristine weights
(`ExactBase`), so it equals a solo run of the untouched model. Otherwise (quantization, masks)
they run as two passes, the baseline on the pristine weights put back for the duration.
`ab_mode` says which mode runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from swtui.core.model.adapters import ModelAdapter
from swtui.core.errors import UserInputError
from swtui.core.edits.hooks import ExactBase, HookSet, RowCorrection, SARestore, ZeroWrite, installed
from swtui.core.edits.keys import make_key, weights_hash
from swtui.core.edits.ledger import EditLedger
from swtui.core.model.loading import LoadedModel
from swtui.core.verdicts import Verdict

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
    share: float | None = None  # x[t,col]·W[row,col] / y[t,row] at the output spike: 1 = all of it
    prompts_spiking: int | None = None  # on how many confirmation prompts its layer spikes on `row`
    prompts_total: int | None = None
    z_in: float | None = None  # the spike rule's scores of its layer's input and output spikes
    z_out: float | None = None
    write: float | None = None  # the MLP's write into the residual at the spike (after a post-FFN norm)
    norm_gain: float | None = None  # that norm's gain on `row` (None: no post-FFN norm)
    ppl_sa_restored: float | None = None  # pruned alone with its super activation restored
    verdict: Verdict | None = None  # a str: its label
    # the evidence (swtui.core.evidence.stats.Ratio, paired per-token losses with a 95% interval):
    ratio: object = None  # ppl pruned alone / ppl base
    control: object = None  # the same for a random weight of matched magnitude in the same tensor
    control_key: tuple | None = None  # that control weight (layer, row, col)
    sa_ratio: object = None  # pruned with its super activation restored / base
    role: str | None = None  # "carrier" | "canceller" of a massive channel's activation (None: not a writer)
    expert: int | None = None  # fused experts: the expert whose down projection holds it (None: dense)
    super_expert: dict | None = None  # its expert judged by the super-experts rule (`swtui.core.detection.experts`)
    contribution: float | None = None  # what its controls are matched on: |x·w| on the probe (|w| in fused experts)
    small_effect: bool | None = None  # below threshold, but its interval excludes 1
    provisional: str | None = None  # while its controls are measured: the verdict its treatment points to
    evidence: dict | None = None  # its claim as measured (plan.ClaimResult.to_json): every control, looks, tokens

    @property
    def key(self) -> tuple:
        """(layer, row, col), or (layer, row, col, expert) in a layer of fused experts."""
        return make_key(self.layer, self.row, self.col, self.expert)

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
    #: activation ablations: (layer, channel) whose MLP write is zeroed in the edited variant, to see
    #: whether an activation matters when no single weight carries it
    zero_writes: set = field(default_factory=set)

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
        if self.loaded.streamed:  # its decoder layers are meta tensors between passes
            import torch

            return torch.device(self.loaded.device)
        return next(self.model.parameters()).device

    @property
    def streamed(self) -> bool:
        """The decoder layers are read from the files at each pass (`--stream`)."""
        return self.loaded.streamed

    @property
    def context_length(self) -> int:
        cfg = self.model.config
        for name in ("max_position_embeddings", "n_positions", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    def info(self):
        """The model's one description (`model.info.ModelInfo`, which the protocol carries)."""
        from swtui.core.model.info import ModelInfo

        lm = self.loaded
        return ModelInfo(name=lm.name, source=lm.source, kind=lm.kind, arch=self.adapter.arch,
                         layers=self.adapter.n_layers, params=int(lm.n_params), device=str(self.device),
                         dtype=str(lm.dtype), revision=lm.revision, file_sha256=lm.file_hash,
                         source_quant=lm.source_quant)

    def pristine_hash(self) -> str:
        """Hash of the weights as loaded (computed once, with all edits undone)."""
        if self._pristine_hash is None:
            with self.ledger.pristine_weights():
                self._pristine_hash = weights_hash(self.model)
        return self._pristine_hash

    def current_hash(self) -> str:
        if self.streamed and self.ledger.count == 0:  # its weights are the files' plus the ledger's state:
            return self.pristine_hash()  # with no edit they are the pristine ones (and a pass is saved)
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

    def name_super_weight(self, layer: int, row: int, col: int, label: str = "", source: str = "user",
                          expert: int | None = None) -> SuperWeight:
        self.adapter.check_coords(layer, row, col, expert)
        sw = self.find_super_weight(make_key(layer, row, col, expert))
        if sw is None:
            sw = SuperWeight(layer, row, col, self.ledger.pristine_value(layer, row, col, expert), label=label,
                             source=source, expert=expert)
            self.super_weights.append(sw)
        elif label:
            sw.label = label
        return sw

    @property
    def quant_config(self) -> dict | None:
        q = self.ledger.quantizer
        return None if q is None else q.config.to_dict()

    @property
    def quant_label(self) -> str:
        """How the model is quantized now, in words ("full precision" when it is not)."""
        q = self.ledger.quantizer
        return "full precision" if q is None else q.config.describe()

    @property
    def edit_count(self) -> int:
        """Scalar edits, super activations restored and MLP writes zeroed."""
        return self.ledger.count + len(self.sa_restore) + len(self.zero_writes)

    def state_of(self, key) -> str:
        edit = self.ledger.edit(key)
        text = "original" if edit is None else ("pruned" if edit.op == "prune" else f"scaled ×{edit.factor:g}")
        if key in self.sa_restore:
            text += " + SA restored"
        return text

    def set_sa_restore(self, *key_and_on, on: bool | None = None) -> None:
        """Toggle the paper's 'restore super activation' for one super weight (named if needed):
        set_sa_restore(layer, row, col, on) or set_sa_restore(*key, on=on). Refused in fused experts."""
        key = key_and_on if on is not None else key_and_on[:-1]
        on = on if on is not None else key_and_on[-1]
        layer, row, col = key[:3]
        if len(key) > 3 or self.adapter.site(layer).is_moe:
            raise UserInputError(f"layer {layer} is a layer of fused experts: restoring a super activation "
                                 "there is not supported (prune, scale and restore the weight are)")
        self.adapter.check_coords(layer, row, col)
        if on:
            self.name_super_weight(layer, row, col)
            self.sa_restore.add((layer, row, col))
        else:
            self.sa_restore.discard((layer, row, col))

    def set_zero_write(self, layer: int, channel: int, on: bool) -> None:
        site = self.adapter.site(layer)
        if not 0 <= channel < site.out_features:
            raise UserInputError(f"channel {channel} is out of range for layer {layer} (0..{site.out_features - 1})")
        (self.zero_writes.add if on else self.zero_writes.discard)((layer, channel))

    def state_key(self) -> tuple:
        """A value equal for equal model states (edits, masks, quantization, SA restores)."""
        q = self.quant_config
        masks = tuple(sorted((name, tuple(idx.tolist())) for name, idx in self.ledger.zero_masks.items()))
        return (tuple(sorted(self.ledger.edits.items())), masks,
                None if q is None else repr(sorted(q.items())), tuple(sorted(self.sa_restore)),
                tuple(sorted(self.zero_writes)), tuple(sorted(self.ledger.pruned_experts)))

    def reset(self) -> None:
        """Back to the pristine model: no edits, no quantization, no SA restore, no ablation."""
        self.ledger.restore_all()
        self.sa_restore.clear()
        self.zero_writes.clear()

    # -- variants -----------------------------------------------------------------------------
    #: run base and current as rows of one batch where that is faithful. On the CPU a row of a
    #: batch of two differs from a solo run by an ulp at most (the fidelity bounds are tested in
    #: every dtype); GPU GEMMs pick kernels by shape, so there the baseline runs as its own pass
    #: unless this is forced to True. A streamed model batches on an accelerator too: each pass
    #: reads every layer from disk, which costs far more than a last-ulp difference of kernels.
    batch_on_accelerator: bool = False

    @property
    def batchable(self) -> bool:
        """True when base and current run as rows of one batch (dense weights, scalar edits only)."""
        if self.ledger.rewritten or self.adapter.is_moe:  # fused experts: the baseline runs its own pass
            return False
        return self.device.type == "cpu" or self.batch_on_accelerator or self.streamed

    @property
    def ab_mode(self) -> str:
        return "batched" if self.batchable else "two passes"

    def _items(self, base_rows, current_rows) -> dict[int, list]:
        """Per layer: the hook items that make `base_rows` pristine and `current_rows` edited."""
        per_layer: dict[int, list] = {}
        ledger = self.ledger
        if base_rows:
            writes: dict[int, list] = {}
            for key in ledger.edits:
                site = self.adapter.site(key[0])
                idx = site.index_of(key[1], key[2])
                device = site.down.weight.device
                device = self.device if device.type == "meta" else device  # streamed: real inside the forward
                writes.setdefault(key[0], []).append((idx, ledger.pristine_scalar(key).to(device)))
            for layer, items in writes.items():
                per_layer.setdefault(layer, []).append(ExactBase(tuple(items), tuple(base_rows)))
        if current_rows:
            for key, delta in ledger.corrections.items():  # bitsandbytes: held-out weights, exactly
                per_layer.setdefault(key[0], []).append(RowCorrection(key[1], key[2], delta, tuple(current_rows)))
            terms: dict[tuple[int, int], list] = {}
            for key in sorted(self.sa_restore):
                delta = ledger.pristine_value(*key) - ledger.current_value(*key)
                terms.setdefault(key[:2], []).append((key[2], delta))
            for (layer, row), items in terms.items():
                per_layer.setdefault(layer, []).append(SARestore(row, tuple(items), tuple(current_rows)))
            for layer, channel in sorted(self.zero_writes):
                per_layer.setdefault(layer, []).append(ZeroWrite(channel, tuple(current_rows)))
        return per_layer

    @contextlib.contextmanager
    def _variant_hooks(self, base_rows, current_rows, batch: int) -> Iterator[None]:
        extra = HookSet()
        try:
            q = self.ledger.quantizer
            if current_rows and q is not None and q.config.act_bits:  # the quantizer installs its own hooks
                extra.add(q.activation_hooks(self, tuple(current_rows), batch))
            with installed(self.adapter, self._items(base_rows, current_rows), batch):
                yield
        finally:
            extra.close()

    def variant_runs(self, variants=VARIANTS):
        """[(names, context)]: one batched run when possible, else one run per variant."""
        variants = tuple(variants)
        if len(variants) == 1 or not self.batchable:
            runs = []
            for name in variants:
                if name == "base":
                    runs.append(((name,), self._solo_base()))
                else:
                    runs.append(((name,), self._variant_hooks((), (0,), 1)))
            return runs
        base_rows = tuple(i for i, v in enumerate(variants) if v == "base")
        current_rows = tuple(i for i, v in enumerate(variants) if v == "current")
        return [(variants, self._variant_hooks(base_rows, current_rows, len(variants)))]

    @contextlib.contextmanager
    def _solo_base(self) -> Iterator[None]:
        with self.ledger.pristine_weights():
            yield

    def run_variants(self, fn: Callable[[int], list], variants=VARIANTS) -> dict:
        """Call fn(n_rows) -> list of per-row results under each run; returns {variant: result}."""
        out = {}
        for names, ctx in self.variant_runs(variants):
            with ctx:
                results = fn(len(names))
            out.update(zip(names, results))
        return out
