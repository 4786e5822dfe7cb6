"""Side-by-side comparisons: the baseline and up to three quantization variants, and sweeps.

A comparison measures the same `Metrics` (perplexity on the evaluation text, stopword mass, a
greedy generation) for the untouched model and for each variant: a quantization configuration
applied through the ledger, on top of the current scalar edits or without them. Different weights
cannot share a batch, so variants run one after the other, each recomputed from the pristine
tensors (W = Q(E(W_pristine))); memory stays at the model plus the ledger's pristine copies of
the quantized tensors. The session's own quantization and edits are put back exactly afterwards,
also on failure or cancel.

Sweeps: perplexity and stopword mass as a super weight is scaled (0 = pruned, 1 = untouched),
and naive vs super-outlier-aware round-to-nearest by block size (the paper's comparison).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Callable

from swtui.core.errors import Cancelled, UserInputError
from swtui.core.protocol import Metrics

MAX_VARIANTS = 3
DEFAULT_FACTORS = (0.0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0)


def measure(session, variant: str = "current", prompt: str | None = None, max_new_tokens: int = 24,
            text: str | None = None, cancel: threading.Event | None = None, on_token=None) -> Metrics:
    """One variant's `Metrics` (`metrics.measure` for that variant alone)."""
    from swtui.core import metrics

    return metrics.measure(session, prompt, max_new_tokens, text, variants=(variant,), cancel=cancel,
                           on_token=on_token)[variant]


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("comparison cancelled")


@dataclass(frozen=True)
class Variant:
    name: str
    config: dict | None  # a quantization config (see quant_session.parse_config); None: full precision
    with_edits: bool = True  # on top of the current scalar edits (else on the unedited weights)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Variant":
        try:
            return cls(str(data["name"]), data.get("config"), bool(data.get("with_edits", True)))
        except (KeyError, TypeError) as exc:
            raise UserInputError(f"bad variant {data!r}: {exc}") from None


def check_variants(variants: list[Variant]) -> None:
    from swtui.core.quant_session import parse_config

    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise UserInputError(f"a comparison holds 1 to {MAX_VARIANTS} variants, not {len(variants)}")
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or "baseline" in names:
        raise UserInputError("variant names must be distinct and not 'baseline'")
    for v in variants:
        if v.config is not None:
            parse_config(v.config)


class _SavedState:
    """The session's quantization and scalar edits, put back exactly on exit."""

    def __init__(self, session):
        self.session = session
        self.config = session.quant_config
        self.edits = dict(session.ledger.edits)

    def drop_edits(self) -> None:
        for key in list(self.session.ledger.edits):
            self.session.ledger.set_edit(key, None)

    def put_edits_back(self) -> None:
        for key, edit in self.edits.items():
            self.session.ledger.set_edit(key, edit)

    def __enter__(self) -> "_SavedState":
        return self

    def __exit__(self, *exc) -> None:
        from swtui.core.quant_session import apply_quant_config

        if self.session.quant_config != self.config:
            apply_quant_config(self.session, self.config)
        if dict(self.session.ledger.edits) != self.edits:
            self.drop_edits()
            self.put_edits_back()


def compare(session, variants: list[Variant], prompt: str | None = None, max_new_tokens: int = 24,
            text: str | None = None, progress: Callable[[str, float | None], None] | None = None,
            cancel: threading.Event | None = None,
            on_result: Callable[[str, Metrics], None] | None = None, on_token=None) -> dict[str, Metrics]:
    """{"baseline": Metrics, variant name: Metrics, …}, each reported through `on_result` as soon as
    it is known; `on_token(name, token_id, text)` streams generations."""
    from swtui.core.quant_session import apply_quant_config

    check_variants(variants)
    progress = progress or (lambda stage, frac: None)
    results: dict[str, Metrics] = {}

    def done(name: str, m: Metrics) -> None:
        results[name] = m
        if on_result:
            on_result(name, m)

    def tokens(name: str):
        return None if on_token is None else (lambda _v, tid, so_far: on_token(name, tid, so_far))

    progress("comparison: baseline", 0.0)
    done("baseline", measure(session, "base", prompt, max_new_tokens, text, cancel, tokens("baseline")))
    with _SavedState(session) as saved:
        for i, v in enumerate(variants):
            _check(cancel)
            progress(f"comparison: {v.name}", (i + 1) / (len(variants) + 1))
            if not v.with_edits:
                saved.drop_edits()
            elif dict(session.ledger.edits) != saved.edits:
                saved.put_edits_back()
            apply_quant_config(session, v.config, progress, cancel)
            done(v.name, measure(session, "current", prompt, max_new_tokens, text, cancel, tokens(v.name)))
    progress("comparison: done", 1.0)
    return results


def scale_sweep(session, key: tuple[int, int, int], factors=DEFAULT_FACTORS, text: str | None = None,
                progress: Callable[[str, float | None], None] | None = None,
                cancel: threading.Event | None = None, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """[{factor, perplexity, ratio, ratio_ci95, stopword_mass}] with W[key] scaled by each factor on
    top of the current state (0: pruned, 1: its current edit removed). `ratio` is against factor 1
    on the same tokens, with its paired 95% interval (`swtui.core.evidence`), so a minimum can be
    told from noise. The weight's own edit is put back after."""
    from swtui.core import metrics
    from swtui.core.edits import check_factor
    from swtui.core.evidence import fields, paired_ratio, perplexity_of

    session.adapter.check_coords(*key)
    factors = [check_factor(f) for f in factors]
    if not factors:
        raise UserInputError("a scale sweep needs at least one factor")
    progress = progress or (lambda stage, frac: None)
    saved = session.ledger.edit(key)
    rows = []

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
            row = {"factor": f, "perplexity": perplexity_of(here), **fields("ratio", paired_ratio(reference, here)),
                   "stopword_mass": mass, "eval_tokens": int(here.numel())}
            rows.append(row)
            if on_row:
                on_row(row)
    finally:
        session.ledger.set_edit(key, saved)
    progress("scale sweep: done", 1.0)
    return rows


def quant_sweep(session, bits: int, blocks: list[int | None], clip_z: float, text: str | None = None,
                progress: Callable[[str, float | None], None] | None = None,
                cancel: threading.Event | None = None, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Per block size (None: per tensor), W`bits` RTN perplexity: naive, super weights held out,
    clipped at `clip_z`, and both (the paper's super-outlier-aware RTN)."""
    from swtui.core import metrics
    from swtui.core.quant_session import apply_quant_config

    progress = progress or (lambda stage, frac: None)
    kinds = (("naive", None, False), ("keep_sw", None, True), ("clip", clip_z, False), ("sw_aware", clip_z, True))
    rows = []
    with _SavedState(session):
        for i, block in enumerate(blocks):
            row: dict = {"block": block or "tensor"}
            for j, (name, clip, keep) in enumerate(kinds):
                _check(cancel)
                progress(f"quant sweep: block {row['block']}, {name}", (i * len(kinds) + j) / (len(blocks) * len(kinds)))
                apply_quant_config(session, {"method": "rtn", "bits": bits, "group": "block" if block else "tensor",
                                             "block": block, "clip_z": clip, "keep_super_weights": keep},
                                   cancel=cancel)
                row[name] = metrics.perplexity(session, text, variants=("current",))["current"]
            rows.append(row)
            if on_row:
                on_row(row)
    progress("quant sweep: done", 1.0)
    return rows


# -- as background work for the inspector (events out, cancellable) ---------------------------
def compare_work(session, variants: tuple, prompt: str, max_new_tokens: int, emit, progress, cancel,
                 token_interval: float = 0.05) -> dict:
    """Run a comparison and stream it as events; returns the ComparisonDone payload."""
    import time

    from swtui.core import protocol as ev

    parsed = [Variant.from_dict(v) for v in variants]
    last: dict[str, float] = {}

    def on_token(name: str, tid: int, text: str) -> None:
        now = time.monotonic()
        if now - last.get(name, 0.0) >= token_interval:
            last[name] = now
            emit(ev.VariantToken(name, text))

    results: dict[str, dict] = {}

    def on_result(name: str, m: Metrics) -> None:
        results[name] = m.to_dict()
        emit(ev.VariantMeasured(name, m))

    done = {"variants": [v.to_dict() for v in parsed], "results": results}
    try:
        compare(session, parsed, prompt, max_new_tokens, progress=progress, cancel=cancel,
                on_result=on_result, on_token=on_token)
    except Cancelled:
        emit(ev.ComparisonDone(done["variants"], dict(results), cancelled=True))
        raise
    emit(ev.ComparisonDone(done["variants"], dict(results)))
    return done


def sweep_work(session, request, emit, progress, cancel) -> dict:
    """Run a scale or quant sweep as events; returns {"kind", "rows", "meta"}."""
    from swtui.core import protocol as ev

    rows: list[dict] = []

    def on_row(row: dict) -> None:
        rows.append(row)
        emit(ev.SweepRow(request.what, row))

    if request.what == "scale":
        key = tuple(request.key) if request.key else None
        if key is None:
            raise UserInputError("select a super weight to sweep its scale")
        meta = {"super_weight": list(key), "value": session.ledger.pristine_value(*key)}
        run = lambda: scale_sweep(session, key, request.factors, None, progress, cancel, on_row)  # noqa: E731
    elif request.what == "quant":
        from swtui.core.quant_session import held_out_keys

        held = [list(k) for k in held_out_keys(session)]  # what "keep super weights" holds out
        meta = {"bits": request.bits, "clip_z": request.clip_z, "super_weights": held,
                "baseline_perplexity": measure(session, "base").perplexity}
        run = lambda: quant_sweep(session, request.bits, list(request.blocks), request.clip_z, None,  # noqa: E731
                                  progress, cancel, on_row)
    else:
        raise UserInputError(f"unknown sweep {request.what!r}")
    try:
        run()
    except Cancelled:
        emit(ev.SweepDone(request.what, list(rows), meta, cancelled=True))
        raise
    emit(ev.SweepDone(request.what, list(rows), meta))
    return {"kind": request.what, "rows": rows, "meta": meta}
