"""Side-by-side comparisons: the baseline and up to three quantization variants, and sweeps.

A comparison measures the same `Metrics` (perplexity on the evaluation text, stopword mass, a
greedy generation) for the untouched model and for each variant: a quantization configuration
applied through the ledger, on top of the current scalar edits or without them. Different weights
cannot share a batch, so variants run one after the other, each recomputed from the pristine
tensors (W = Q(E(W_pristine))); memory stays at the model plus the ledger's pristine copies of
the quantized tensors. The session's own quantization and edits are put back exactly afterwards,
also on failure or cancel.

The sweeps (scale, block size) live in `swtui.core.evidence.sweeps`.
"""

from __future__ import annotations

import threading
from typing import Callable

from swtui.core.errors import check_cancel
from swtui.core.evidence.records import Metrics
from swtui.core.quant.config import MAX_VARIANTS, Variant, check_variants  # noqa: F401 - re-exported



def measure(session, variant: str = "current", prompt: str | None = None, max_new_tokens: int = 24,
            text: str | None = None, cancel: threading.Event | None = None, on_token=None) -> Metrics:
    """One variant's `Metrics` (`metrics.measure` for that variant alone)."""
    from swtui.core.evidence import metrics

    return metrics.measure(session, prompt, max_new_tokens, text, variants=(variant,), cancel=cancel,
                           on_token=on_token)[variant]


def _check(cancel: threading.Event | None) -> None:
    check_cancel(cancel, "comparison cancelled")


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
        from swtui.core.quant.session import apply_quant_config

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
    from swtui.core.quant.session import apply_quant_config

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
