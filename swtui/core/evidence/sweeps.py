"""Sweeps: perplexity and stopword mass as a super weight is scaled (0 = pruned, 1 = untouched),
and naive vs super-outlier-aware round-to-nearest by block size (the paper's comparison).

Every row pairs its arms on the same tokens (`swtui.core.evidence.stats`): a scale factor against ×1,
SW-aware and keep-SW RTN against naive RTN at the same block size, each with its 95% interval, so
a difference can be told from noise. On a source that was already quantized (a GGUF's Q4_1) every
block row says whether the source's grid confounds it (`SourceQuant.confound`).
"""

from __future__ import annotations

import threading
from typing import Callable

from swtui.core.defaults import CLIP_Z, SCALE_FACTORS
from swtui.core.errors import UserInputError
from swtui.core.evidence.sweep_rows import QuantMeta, QuantRow, ScaleRow
from swtui.core.evidence.variants import _check, _SavedState

ProgressFn = Callable[[str, "float | None"], None]


def scale_sweep(session, key: tuple[int, int, int], factors=SCALE_FACTORS, text: str | None = None,
                progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                on_row: Callable[[ScaleRow], None] | None = None) -> list[ScaleRow]:
    """W[key] scaled by each factor on top of the current state (0: pruned, 1: its current edit
    removed), each row's ratio against factor 1 on the same tokens. The weight's own edit is put
    back after."""
    from swtui.core.evidence import metrics
    from swtui.core.edits.keys import check_factor
    from swtui.core.evidence.stats import paired_ratio, perplexity_of

    session.adapter.check_coords(*key)
    factors = [check_factor(f) for f in factors]
    if not factors:
        raise UserInputError("a scale sweep needs at least one factor")
    progress = progress or (lambda stage, frac: None)
    saved = session.ledger.edit(key)
    rows: list[ScaleRow] = []

    def set_factor(f: float) -> None:
        if f == 1.0:
            session.ledger.set_edit(key, None)
        elif f == 0.0:
            session.ledger.prune(*key)
        else:
            session.ledger.scale(*key, f)

    def losses():
        return metrics.token_losses(session, text, variants=("current",))["current"]

    try:
        progress("scale sweep: ×1 (the reference)", 0.0)
        set_factor(1.0)
        reference = losses()
        for i, f in enumerate(factors):
            _check(cancel)
            progress(f"scale sweep: ×{f:g}", (i + 1) / (len(factors) + 1))
            set_factor(f)
            here = reference if f == 1.0 else losses()
            mass = metrics.stopword_mass(session, variants=("current",)).mass["current"]
            row = ScaleRow(f, perplexity_of(here), paired_ratio(reference, here), mass)
            rows.append(row)
            if on_row:
                on_row(row)
    finally:
        session.ledger.set_edit(key, saved)
    progress("scale sweep: done", 1.0)
    return rows


#: the four ways a block is quantized: (field, clip z or None, hold the super weights out)
ARMS = (("naive", False, False), ("keep_sw", False, True), ("clip", True, False), ("sw_aware", True, True))


def quant_sweep(session, bits: int, blocks: list[int | None], clip_z: float = CLIP_Z, text: str | None = None,
                progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                on_row: Callable[[QuantRow], None] | None = None) -> list[QuantRow]:
    """Per block size (None: per tensor), W`bits` RTN four ways: naive, the super weights held
    out, clipped at `clip_z`, and both (the paper's super-outlier-aware RTN)."""
    from swtui.core.evidence import metrics
    from swtui.core.evidence.stats import paired_ratio, perplexity_of
    from swtui.core.quant.session import apply_quant_config

    progress = progress or (lambda stage, frac: None)
    source = session.loaded.source_quant
    rows: list[QuantRow] = []
    with _SavedState(session):
        for i, block in enumerate(blocks):
            label = "tensor" if block is None else block
            losses = {}
            for j, (name, clip, keep) in enumerate(ARMS):
                _check(cancel)
                progress(f"quant sweep: block {label}, {name}", (i * len(ARMS) + j) / (len(blocks) * len(ARMS)))
                apply_quant_config(session, {"method": "rtn", "bits": bits, "group": "block" if block else "tensor",
                                             "block": block, "clip_z": clip_z if clip else None,
                                             "keep_super_weights": keep}, cancel=cancel)
                losses[name] = metrics.token_losses(session, text, variants=("current",))["current"]
            row = QuantRow(block, *(perplexity_of(losses[name]) for name, _, _ in ARMS),
                           sw_aware_vs_naive=paired_ratio(losses["naive"], losses["sw_aware"]),
                           keep_sw_vs_naive=paired_ratio(losses["naive"], losses["keep_sw"]),
                           confound=source.confound(bits, block))
            rows.append(row)
            if on_row:
                on_row(row)
    progress("quant sweep: done", 1.0)
    return rows


def quant_meta(session, bits: int, clip_z: float, baseline_perplexity: float) -> QuantMeta:
    from swtui.core.quant.session import held_out_keys

    source = session.loaded.source_quant
    return QuantMeta(bits, clip_z, tuple(tuple(k) for k in held_out_keys(session)), baseline_perplexity,
                     source, source.confound(bits, None))
