"""Running the evaluation plan: arms as rows of batched forwards, look by look, from a shared prefix.

`PlanRunner.run(claims)` measures each claim's arms (`swtui.core.evidence.plan`) on the corpus windows of
each look until they decide, strongest claim first, and reports every claim as soon as it is
decided. What makes it cheap:

- **Sequential looks**: an arm stops at the first look whose interval decides (plan.decide_arms).
- **Shared prefixes**: an arm whose edits start at layer L computes layers < L exactly as the
  baseline does, so the baseline's output of layer L − 1 is kept per window (for the layers the
  claims start at) and such an arm runs from layer L: the decoder layers before it return the
  cached output instead of computing it (their forward is swapped for the duration, hooks and
  all). The losses equal a full forward's bit for bit (tests/core/test_plan.py).
- **Rows of one batch**: where the A/B path batches (dense weights on the CPU: `Session.batchable`),
  the arms of a look are rows of one forward (`rows` at a time), each an exact float32 correction of
  its row; elsewhere one pass per arm with the weights edited through the ledger and put back.

The baseline of the current state is measured once per window and also records, per window,
where each massive channel is massive (`hooks.Positions`, for the massive-positions ablations).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from swtui.core.evidence.corpus import Corpus
from swtui.core.defaults import MASSIVE_RATIO, MASSIVE_TOP_SHARE
from swtui.core.errors import check_cancel
from swtui.core.edits.hooks import (HookSet, Positions, RowCorrection, SARestore, ZeroWrite, ZeroWriteAt,
                              _first_tensor, installed)
from swtui.core.evidence.plan import Arm, ArmResult, Claim, ClaimResult, Schedule, decide_arms

#: rows per forward, each an (arm, window) pair: a 135M model on 2 CPU cores does 1.6× the tokens
#: per second at 8 rows of 64 tokens than at one
ROWS = 8


@dataclass
class Cost:
    """What the plan spent: target tokens per arm and per look, forwards, seconds."""
    tokens: dict = field(default_factory=dict)  # arm name -> target tokens evaluated
    per_look: dict = field(default_factory=dict)  # look index -> target tokens (all arms)
    forwards: int = 0
    prefix_layers_skipped: int = 0  # decoder layer computations saved by the shared prefixes
    layer_runs: int = 0  # decoder layer computations done
    seconds: float = 0.0
    threads: int | None = None  # torch's CPU threads when it last ran (its seconds depend on them)

    def to_json(self) -> dict:
        return {"tokens_total": sum(self.tokens.values()), "tokens_per_arm": dict(self.tokens),
                "tokens_per_look": {str(k): v for k, v in sorted(self.per_look.items())},
                "forwards": self.forwards, "layer_runs": self.layer_runs,
                "layer_runs_saved_by_prefix": self.prefix_layers_skipped, "seconds": round(self.seconds, 3),
                "torch_threads": self.threads}


class PlanRunner:
    """Measures claims on `corpus` for `session`'s current state; keeps the baseline between runs."""

    def __init__(self, session, corpus: Corpus, threshold: float, schedule: Schedule,
                 massive_channels=(), rows: int | None = None, prefix: bool = True) -> None:
        self.session = session
        self.corpus = corpus
        self.threshold = threshold
        self.schedule = schedule
        self.massive = tuple(massive_channels)
        self.rows = rows or getattr(session, "batch_rows", None) or ROWS
        n = len(corpus.windows)
        self.base: list = [None] * n  # per window: the baseline's per-token losses
        self.prefix: list[dict] = [{} for _ in range(n)]  # per window: {layer L: baseline output of layer L-1}
        self.positions: list[dict] = [{} for _ in range(n)]  # per window: {massive channel: bool [T]}
        self.prefix_layers: set[int] = set()
        self.use_prefix = prefix  # False: every arm computes every layer (the exactness tests' reference)
        self.losses: dict = {}  # arm's Edit -> {window: per-token losses} measured so far
        self.source = Positions()
        self.cost = Cost()
        self._ids: list = [None] * n

    # -- the loop --------------------------------------------------------------------------------
    def run(self, claims: list[Claim], on_claim: Callable[[ClaimResult], None] | None = None,
            cancel: threading.Event | None = None, progress: Callable[[float], None] | None = None) -> list[ClaimResult]:
        """Measure `claims` (strongest first) until each is decided; `on_claim` as each one is."""
        import torch

        t0 = time.perf_counter()
        self.cost.threads = torch.get_num_threads()
        order = sorted(claims, key=lambda c: -c.priority)
        results = [ClaimResult(c, ArmResult(c.treatment), [ArmResult(a) for a in c.controls],
                               threshold=self.threshold, level=self.schedule.level) for c in order]
        for c in order:
            for arm in c.arms:
                layer = arm.edit.first_layer()
                if layer > 0 and self.use_prefix:
                    self.prefix_layers.add(layer)
        looks = self.schedule.looks
        planned = sum(len(r.claim.arms) * looks[min(len(looks), r.claim.max_looks or len(looks)) - 1]
                      for r in results) or 1
        done_windows = 0
        told: set[str] = set()  # claims whose provisional effect was reported
        try:
            while True:
                pending = [r for r in results if not r.done]
                if not pending:
                    break
                batch, look = self._next(pending)
                lo = looks[look - 1] if look > 0 else 0
                hi = looks[look]
                self._measure(batch, range(lo, hi), look, cancel)
                done_windows += (hi - lo) * len(batch)
                for r in pending:
                    self._update(r, min(len(looks), r.claim.max_looks or len(looks)))
                    if on_claim and (r.done or (r.provisional is not None and r.claim.name not in told)):
                        told.add(r.claim.name)
                        on_claim(r)
                if progress:
                    progress(min(1.0, done_windows / planned))
        finally:
            self.cost.seconds += time.perf_counter() - t0
        return results

    def _next(self, pending: list[ClaimResult]) -> tuple[list[ArmResult], int]:
        """The arms of the next forwards and their look: the lead claim's arms at its earliest look
        (the treatment alone first: its provisional effect streams before the controls are measured,
        and a treatment below the threshold needs none), the forwards' last rows filled with other
        arms at the same look, the lead's own controls first."""
        lead = pending[0]
        look = min(a.looks for a in _active(lead))
        if lead.treatment.looks == look and not lead.treatment.done:  # its controls may not be needed
            batch = [lead.treatment]
        else:
            batch = [a for a in _active(lead) if a.looks == look]
        looks = self.schedule.looks
        per_arm = looks[look] - (looks[look - 1] if look > 0 else 0)  # rows per arm: its windows of this look
        room = -(-len(batch) * per_arm // self.rows) * self.rows  # whole forwards' worth of rows
        for a in [a for r in pending for a in _active(r)]:  # the lead's own controls first
            if (len(batch) + 1) * per_arm <= room and a.looks == look and all(a is not b for b in batch):
                batch.append(a)
        return batch, look

    def _update(self, result: ClaimResult, looks: int) -> None:
        from swtui.core.evidence.stats import window_ratio

        for a in [result.treatment] + result.controls:
            if a.done or not a.looks:
                continue
            got = self.arm_losses(a)
            a.windows = len(got)
            a.ratio = window_ratio(self.base[:len(got)], got, level=self.schedule.level)
            a.lag1 = self._neighbours([float((x - b).mean()) for x, b in zip(got, self.base)])
        decide_arms(result, self.threshold, looks)

    def arm_losses(self, a: ArmResult) -> list:
        """The per-token losses of `a`'s windows so far (the windows of its looks, in order; an arm
        with the same edit in another claim is measured once for both)."""
        if not a.looks:
            return []
        measured = self.losses.get(a.arm.edit, {})
        return [measured[w] for w in range(self.schedule.looks[a.looks - 1])]

    def _neighbours(self, diffs: list[float]) -> float | None:
        """The correlation of the mean differences of neighbouring windows of one document: near 0,
        windows are independent enough to be the bootstrap's clusters."""
        import torch

        where = {(w.doc, w.index): i for i, w in enumerate(self.corpus.windows[:len(diffs)])}
        pairs = [(diffs[i], diffs[where[(w.doc, w.index + 1)]]) for i, w in enumerate(self.corpus.windows[:len(diffs)])
                 if (w.doc, w.index + 1) in where]
        if len(pairs) < 3:
            return None
        x = torch.tensor(pairs, dtype=torch.float64)
        x = x - x.mean(dim=0)
        denom = float((x[:, 0].square().sum() * x[:, 1].square().sum()).sqrt())
        return float((x[:, 0] * x[:, 1]).sum()) / denom if denom > 0 else None

    # -- measuring ---------------------------------------------------------------------------
    def _measure(self, batch: list[ArmResult], windows: range, look: int, cancel) -> None:
        """Every arm of `batch` on `windows`: (arm, window) pairs as the rows of batched forwards."""
        self._baseline(windows, cancel)
        chunks, together = self._chunks(batch, windows)
        for chunk in chunks:
            check_cancel(cancel, "detection cancelled")
            ids, skip, stacked, context = self._setup(chunk, together)
            with context(), skipped(self.session.adapter, skip, stacked):
                self._record(chunk, _losses(self.session, ids, len(chunk)), look, skip)
        for a in batch:
            a.looks = look + 1

    def _chunks(self, batch: list[ArmResult], windows: range) -> tuple[list, bool]:
        """The forwards' rows, (arm, window) pairs not yet measured, and whether arms share a forward
        (`together`: rows of one batch, each an exact correction) or run one per forward."""
        session = self.session
        together = session.batchable and session.ledger.quantizer is None
        unique = {a.arm.edit: a.arm for a in batch}  # one measurement per edit, whichever claims share it
        arms = sorted(unique.values(), key=lambda arm: -arm.edit.first_layer())  # shared prefixes together
        todo = lambda arm: [w for w in windows if w not in self.losses.get(arm.edit, {})]  # noqa: E731
        if together:
            pairs = [(arm, w) for arm in arms for w in todo(arm)]
            return [pairs[i:i + self.rows] for i in range(0, len(pairs), self.rows)], True
        # one arm per forward (its edits go through the ledger), its windows as the rows
        return [[(arm, w) for w in ws[i:i + self.rows]] for arm in arms for ws in [todo(arm)]
                for i in range(0, len(ws), self.rows)], False

    def _record(self, chunk: list, losses: list, look: int, skip: int) -> None:
        for (arm, w), loss in zip(chunk, losses):
            self.losses.setdefault(arm.edit, {})[w] = loss
            self.cost.tokens[arm.name] = self.cost.tokens.get(arm.name, 0) + loss.numel()
            self.cost.per_look[look] = self.cost.per_look.get(look, 0) + loss.numel()
        n = len(chunk)
        self.cost.forwards += 1
        self.cost.layer_runs += (self.session.adapter.n_layers - skip) * n
        self.cost.prefix_layers_skipped += skip * n

    def _window(self, w: int):
        if self._ids[w] is None:
            self._ids[w] = self.corpus.windows[w].ids.to(self.session.device)
        return self._ids[w]

    def _baseline(self, windows: range, cancel) -> None:
        """The current state's losses on the `windows` not yet measured, recording the prefixes and
        the massive positions."""
        from swtui.core.evidence.metrics import check_head

        check_head(self.session)
        todo = [w for w in windows if self.base[w] is None]
        for i in range(0, len(todo), self.rows):
            check_cancel(cancel, "detection cancelled")
            self._baseline_rows(todo[i:i + self.rows])

    def _baseline_rows(self, rows: list[int]) -> None:
        ids, context = self._baseline_setup(rows)
        with context():
            self._baseline_record(rows, _losses(self.session, ids, len(rows)))

    def _baseline_setup(self, rows: list[int]):
        """(ids, context factory) of the baseline's forward on windows `rows`: the current state, with
        hooks that keep the prefixes and record where each massive channel is massive."""
        import torch

        session = self.session

        def keep(layer):
            def hook(module, args, output):
                for i, w in enumerate(rows):
                    self.prefix[w][layer] = _row(output, i)
            return hook

        def massive_at(module, args, output):
            h = _first_tensor(output).detach().float()
            for i, w in enumerate(rows):
                a = h[i].abs()
                level = max(MASSIVE_RATIO * float(a.median()), MASSIVE_TOP_SHARE * float(a.max()))
                seen = self.positions[w]
                for c in self.massive:
                    hit = a[:, c] >= level
                    seen[c] = hit if c not in seen else seen[c] | hit

        @contextlib.contextmanager
        def context():
            hooks = HookSet()
            (names, ctx), = session.variant_runs(("current",))
            with ctx, hooks:
                for layer in sorted(self.prefix_layers):
                    if 0 < layer < session.adapter.n_layers:
                        hooks.add(session.adapter.site(layer - 1).layer.register_forward_hook(keep(layer)))
                if self.massive:
                    for site in session.adapter.sites:
                        hooks.add(site.layer.register_forward_hook(massive_at))
                yield

        return torch.cat([self._window(w) for w in rows]), context

    def _baseline_record(self, rows: list[int], losses: list) -> None:
        for w, loss in zip(rows, losses):
            self.base[w] = loss
            self.cost.per_look[-1] = self.cost.per_look.get(-1, 0) + loss.numel()
            self.cost.tokens["baseline"] = self.cost.tokens.get("baseline", 0) + loss.numel()
        self.cost.forwards += 1
        self.cost.layer_runs += self.session.adapter.n_layers * len(rows)

    def _setup(self, chunk: list, together: bool):
        """(ids, layers skipped, their cached output, context factory) of one forward whose rows are
        `chunk`'s (arm, window) pairs; the context applies each row's arm."""
        import torch

        session = self.session
        n = len(chunk)
        ids = torch.cat([self._window(w) for _, w in chunk])
        rows = [self.positions[w] for _, w in chunk]
        start = min(arm.edit.first_layer() for arm, _ in chunk)
        cached = [self.prefix[w].get(start) for _, w in chunk] if start > 0 else None
        skip = start if cached and all(c is not None for c in cached) else 0
        stacked = _stack(cached) if skip else None

        def context():
            self.source.rows = rows
            if not together:
                return solo(session, chunk[0][0], self.source)
            per_layer = session._items((), tuple(range(n)))
            for i, (arm, _) in enumerate(chunk):
                for layer, item in arm_items(session, arm, (i,), self.source):
                    per_layer.setdefault(layer, []).append(item)
            return installed(session.adapter, per_layer, n)

        return ids, skip, stacked, context


def _active(result: ClaimResult) -> list[ArmResult]:
    return [a for a in [result.treatment] + result.controls if not a.done]


def _row(output, i: int):
    """Row i of a decoder layer's output (a tensor, or a tuple whose first element is one)."""
    if isinstance(output, tuple):
        return (output[0][i:i + 1].detach().clone(),) + tuple(output[1:])
    return output[i:i + 1].detach().clone()


def _stack(cached: list):
    import torch

    if isinstance(cached[0], tuple):
        return (torch.cat([c[0] for c in cached]),) + tuple(cached[0][1:])
    return torch.cat(cached)


@contextlib.contextmanager
def skipped(adapter, upto: int, output) -> Iterator[None]:
    """Decoder layers < `upto` return `output` (the baseline's output of layer upto − 1, one row per
    batch row) instead of computing: the arms' edits start at `upto`, so that is what they compute."""
    if not upto or output is None:
        yield
        return
    saved = []
    for site in adapter.sites[:upto]:
        layer = site.layer
        saved.append((layer, layer.__dict__.get("forward")))
        layer.forward = lambda *args, **kwargs: output
    try:
        yield
    finally:
        for layer, forward in saved:
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


def arm_items(session, arm: Arm, rows: tuple | None, source: Positions):
    """(layer, hook item) pairs that apply `arm`'s edit to batch `rows` (rows=None: a solo pass,
    whose pruned weights the ledger zeroes instead)."""
    ledger = session.ledger
    edit = arm.edit
    terms: dict = {}
    for key in edit.prune:
        if ledger.edit(key) is not None:
            continue
        if rows is not None:
            yield key[0], RowCorrection(key[1], key[2], -ledger.current_value(*key), rows)
        terms.setdefault(key[:2], []).append((key[2], ledger.pristine_value(*key)))
    if edit.sa_restore:
        for (layer, row), items in terms.items():
            yield layer, SARestore(row, tuple(items), rows)
    for layer, channel in edit.zero_writes:
        yield layer, ZeroWrite(channel, rows)
    for layer, channel, positions_of in edit.zero_at:
        yield layer, ZeroWriteAt(channel, positions_of, source, rows)


@contextlib.contextmanager
def solo(session, arm: Arm, source: Positions) -> Iterator[None]:
    """One pass of `arm` on its own: pruned weights and experts through the ledger (put back after),
    the rest as hooks, on top of the current state's own interventions."""
    ledger = session.ledger
    keys = [k for k in arm.edit.prune if ledger.edit(k) is None]
    before = ledger.pruned_experts
    items: dict[int, list] = {}
    for layer, item in arm_items(session, arm, None, source):
        items.setdefault(layer, []).append(item)
    for key in keys:
        ledger.prune(*key)
    if arm.edit.experts:
        ledger.set_pruned_experts(before | frozenset(arm.edit.experts))
    try:
        (names, ctx), = session.variant_runs(("current",))
        with ctx, installed(session.adapter, items, 1):
            yield
    finally:
        if arm.edit.experts:
            ledger.set_pruned_experts(before)
        for key in reversed(keys):
            ledger.restore(*key)


def _losses(session, ids, n: int) -> list:
    """Per-token losses of `ids` ([1, T]) for `n` rows of one forward."""
    from swtui.core.evidence.metrics import window_losses

    return window_losses(session, ids, n)
