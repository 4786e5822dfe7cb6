"""`ablate`'s arms in one pass over the weights: every arm's forwards as jobs of one layer-major pass.

An ablation measures arms (the treatment, the non-SW control), each a *state* of the session (the
ledger's scalar edits, zero masks and pruned experts; the SA restores and zero writes) measured with
the baseline on the same tokens. Each arm's measurement is forwards: one per measurement window
(losses and stopword mass), per chunk of a user's text, and per variant run (`Session.variant_runs`:
base and current as rows of one batch, or one run each). Here every such forward of every arm is a
`lockstep.Job` whose context puts its arm's state in place (`States.use`: only when it is not the
one in place already) and installs its variant run's hooks; `lockstep.run_jobs` runs them as
ordinary forwards in memory and as one layer-major pass on a streamed model, whose live layer is
re-applied the arm's state as each job goes through it. Same forwards, same rows, same hooks: the
figures are the same in both, bit for bit (tests/core/test_stream_ablate.py), and a streamed
ablation reads the weights once for all its arms' measurements.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from swtui.core.evidence.lockstep import Job, run_jobs


@dataclass(frozen=True)
class ArmState:
    """What an arm changes, as the session holds it (see `of`)."""
    edits: tuple  # ((key, ScalarEdit), …)
    zeros: tuple  # ((param name, flat indices), …): the very tensors, compared by identity
    experts: frozenset
    sa_restore: frozenset
    zero_writes: frozenset

    @classmethod
    def of(cls, session) -> "ArmState":
        ledger = session.ledger
        return cls(tuple(sorted(ledger.edits.items())), tuple(sorted(ledger.zero_masks.items(), key=lambda kv: kv[0])),
                   ledger.pruned_experts, frozenset(session.sa_restore), frozenset(session.zero_writes))

    def put(self, session) -> None:
        """Make this the session's state (only the transitions that change something)."""
        ledger = session.ledger
        want = dict(self.edits)
        for key in [k for k in ledger.edits if k not in want]:
            ledger.set_edit(key, None)
        for key, edit in want.items():
            if ledger.edit(key) != edit:
                ledger.set_edit(key, edit)
        masks = ledger.zero_masks
        if set(masks) != {n for n, _ in self.zeros} or any(masks[n] is not z for n, z in self.zeros):
            ledger.set_zeros(dict(self.zeros))
        if ledger.pruned_experts != self.experts:
            ledger.set_pruned_experts(self.experts)
        session.sa_restore.clear()
        session.sa_restore.update(self.sa_restore)
        session.zero_writes.clear()
        session.zero_writes.update(self.zero_writes)


class States:
    """Switches `session` between arm states lazily; `restore` puts back the state it found."""

    def __init__(self, session) -> None:
        self.session = session
        self.found = ArmState.of(session)
        self.current = self.found

    def use(self, state: ArmState) -> None:
        if state is not self.current:
            state.put(self.session)
            self.current = state

    def restore(self) -> None:
        self.use(self.found)


@dataclass
class ArmPlan:
    """One arm to measure: its state, and the variants measured under it ("current"; "base" too
    for the arm that also gives the baseline)."""
    name: str
    state: ArmState
    variants: tuple


@dataclass
class ArmFigures:
    """What `measure_arms` gives one arm: {variant: per-token losses} on the text measured, and the
    stopword report over the measurement windows."""
    losses: dict
    stopwords: object
    ab_mode: str  # how base and current ran under the arm's state ("batched", "two passes")


def measure_arms(session, arms: list[ArmPlan], text: str | None = None, cancel=None) -> tuple[dict, int]:
    """({arm name: ArmFigures}, passes over the weights): every arm's measurement windows (the
    chunks of `text` when given, as `metrics.measure` takes them) as jobs of one `run_jobs`."""
    from swtui.core.evidence import metrics

    metrics.check_head(session)
    windows = metrics.measurement_windows(session) if text is None else metrics._windows(session, text, 512)
    windows = [w.to(session.device) for w in windows]
    sw_index = metrics.stopword_index(session)
    states = States(session)
    stats: dict = {}  # (arm, variant) -> [window_stats row, per window]
    jobs: list[Job] = []
    modes = {}
    try:
        for arm in arms:
            states.use(arm.state)
            modes[arm.name] = session.ab_mode
            for i, (names, _) in enumerate(session.variant_runs(arm.variants)):
                context = _context(session, states, arm.state, arm.variants, i)
                for w, ids in enumerate(windows):
                    jobs.append(Job(ids.expand(len(names), -1), 0, None, context,
                                    _keep(stats, arm.name, names, w, len(windows)),
                                    lambda s, batch: metrics.window_stats(s, batch, sw_index)))
        passes = run_jobs(session, jobs, cancel, look=0)
    finally:
        states.restore()
    out = {}
    for arm in arms:
        got = {v: stats[(arm.name, v)] for v in arm.variants}
        window_losses, report = metrics.corpus_results(session, got, sw_index)
        out[arm.name] = ArmFigures(window_losses, report, modes[arm.name])
    return out, passes


def _context(session, states: States, state: ArmState, variants: tuple, run: int):
    """The context factory of run `run` of `session.variant_runs(variants)` under `state` (put in
    place by the caller): its hook items are made once, here, so what they keep between forwards
    (the SA restore's running argmax over a generation's steps) lasts as in one `with` of the run."""
    from swtui.core.edits.hooks import installed

    names, _ = session.variant_runs(variants)[run]
    if session.ledger.quantizer is not None:
        raise ValueError("an arm's runs are not made for a quantized session")
    if names == ("base",):  # a solo baseline (`Session._solo_base`)
        items = None
    else:
        items = session._items(tuple(i for i, v in enumerate(names) if v == "base"),
                               tuple(i for i, v in enumerate(names) if v == "current"))

    @contextlib.contextmanager
    def context():
        states.use(state)
        with (session.ledger.pristine_weights() if names == ("base",) else installed(session.adapter, items, len(names))):
            yield
    return context


def _keep(store: dict, arm: str, names: tuple, at: int, of: int):
    def done(rows: list) -> None:
        for name, row in zip(names, rows):
            store.setdefault((arm, name), [None] * of)[at] = row
    return done


def generate_arms(session, arms: list[ArmPlan], prompt: str, max_new_tokens: int, cancel=None) -> tuple[dict, int]:
    """({arm name: {variant: greedy continuation of `prompt`}}, passes over the weights): each arm's
    variant runs under its state, every run's next token one job of the step's `run_jobs` (a streamed
    model: one pass per token for all of them). The steps are `generation.generate`'s, each run with its
    own KV cache, so the tokens are the same."""
    import inspect

    from transformers import DynamicCache

    from swtui.core.errors import UserInputError

    if not 0 < max_new_tokens <= 4096:
        raise UserInputError("the number of new tokens must be between 1 and 4096")
    ids = session.encode(prompt, max_tokens=max(1, session.context_length - max_new_tokens))
    # transformers 5.x calls the KV cache `cache`; 4.x called it `past_key_values`
    cache_kw = "cache" if "cache" in inspect.signature(session.model.forward).parameters else "past_key_values"
    states = States(session)
    tracks: list[_Track] = []
    passes = 0
    try:
        for arm in arms:
            states.use(arm.state)
            for i, (names, _) in enumerate(session.variant_runs(arm.variants)):
                tracks.append(_Track(arm.name, names, _context(session, states, arm.state, arm.variants, i),
                                     ids.expand(len(names), -1), {"use_cache": True, cache_kw: DynamicCache(config=session.model.config)},
                                     session.tokenizer.eos_token_id))
        for _ in range(max_new_tokens):
            live = [t for t in tracks if not all(t.done)]
            if not live:
                break
            passes += run_jobs(session, [Job(t.step, 0, None, t.context, t.take, t.logits, t.kwargs) for t in live], cancel)
    finally:
        states.restore()
    out: dict = {}
    for t in tracks:
        out.setdefault(t.arm, {}).update(zip(t.names, (session.tokenizer.decode(o, skip_special_tokens=True) for o in t.out)))
    return out, passes


class _Track:
    """One variant run's generation: its rows' tokens so far, its cache, the next step's input."""

    def __init__(self, arm: str, names: tuple, context, step, kwargs: dict, eos) -> None:
        self.arm, self.names, self.context, self.step, self.kwargs, self.eos = arm, names, context, step, kwargs, eos
        self.out: list[list[int]] = [[] for _ in names]
        self.done = [False] * len(names)

    def logits(self, session, ids):
        return session.model(input_ids=ids, **self.kwargs).logits[:, -1]

    def take(self, logits) -> None:
        nxt = logits.argmax(dim=-1)
        for i, tid in enumerate(nxt.tolist()):
            if not self.done[i]:
                self.out[i].append(tid)
                self.done[i] = tid == self.eos
        self.step = nxt[:, None]
