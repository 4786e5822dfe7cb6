"""What-if runs on top of the current state, for the impact checks of detection.

A `Scenario` prunes some weights, optionally restores their super activations, and zeroes some
MLP writes. Where the A/B path batches (dense weights on the CPU, see `Session.batchable`),
scenarios run as rows of one batch: a pruned weight is an exact float32 correction
y[..., row] −= x[..., col]·W[row, col] on its row (`RowCorrection`), so each row equals a solo run
of that scenario to rounding. Elsewhere each scenario is one pass with the weights pruned through
the ledger and put back after.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from swtui.core.edits.hooks import RowCorrection, SARestore, ZeroWrite, installed

#: rows of one batched run at most (each row holds a window's logits). Two: the baseline and the
#: first candidate come back together, as early as a single pass would bring the baseline alone
BATCH_ROWS = 2


@dataclass(frozen=True)
class Scenario:
    name: str
    prune: tuple = ()  # keys (layer, row, col) pruned on top of the current state
    sa_restore: bool = False  # with the super activations of the pruned weights restored
    zero_writes: tuple = ()  # (layer, channel): the MLP writes nothing on that channel there


def scenario_runs(session, scenarios: list[Scenario]) -> list:
    """[(names, context)], like `Session.variant_runs`: batched chunks, or one pass per scenario."""
    if session.batchable and session.ledger.quantizer is None:
        return [(tuple(s.name for s in chunk), _batched(session, chunk))
                for chunk in (scenarios[i:i + BATCH_ROWS] for i in range(0, len(scenarios), BATCH_ROWS))]
    return [((s.name,), _solo(session, s)) for s in scenarios]


def _new_keys(session, scenario: Scenario) -> list:
    return [k for k in scenario.prune if session.ledger.edit(k) is None]


@contextlib.contextmanager
def _batched(session, chunk: list[Scenario]) -> Iterator[None]:
    ledger = session.ledger
    per_layer = session._items((), tuple(range(len(chunk))))  # the current state, on every row
    for i, scenario in enumerate(chunk):
        terms: dict = {}
        for key in _new_keys(session, scenario):
            w = ledger.current_value(*key)
            per_layer.setdefault(key[0], []).append(RowCorrection(key[1], key[2], -w, (i,)))
            terms.setdefault(key[:2], []).append((key[2], ledger.pristine_value(*key)))
        if scenario.sa_restore:
            for (layer, row), items in terms.items():
                per_layer.setdefault(layer, []).append(SARestore(row, tuple(items), (i,)))
        for layer, channel in scenario.zero_writes:
            per_layer.setdefault(layer, []).append(ZeroWrite(channel, (i,)))
    with installed(session.adapter, per_layer, len(chunk)):
        yield


@contextlib.contextmanager
def _solo(session, scenario: Scenario) -> Iterator[None]:
    keys = _new_keys(session, scenario)
    restores = [k for k in keys if k not in session.sa_restore] if scenario.sa_restore else []
    writes = [w for w in scenario.zero_writes if w not in session.zero_writes]
    for key in keys:
        session.ledger.prune(*key)
    session.sa_restore.update(restores)
    session.zero_writes.update(writes)
    try:
        (names, ctx), = session.variant_runs(("current",))
        with ctx:
            yield
    finally:
        session.zero_writes.difference_update(writes)
        session.sa_restore.difference_update(restores)
        for key in reversed(keys):
            session.ledger.restore(*key)
