"""What the engine does for each request: one handler per request type, in one registry.

A handler is `fn(engine, session, request) -> bool` (True: the view needs a refresh after it) and
is registered with `@handles(RequestType)`; the engine looks it up by the request's type and runs
it on its thread. Adding a request: a dataclass in `protocol` (with its kind, which decides what it
supersedes), a handler here. What the handlers measure and export reads lives in one record,
`Findings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from swtui.core.engine import protocol as ev
from swtui.core.errors import Cancelled, SwtuiError, UserInputError

Handler = Callable[["object", "object", ev.Request], bool]
HANDLERS: dict[type, Handler] = {}


def handles(*types: type) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            if t in HANDLERS:
                raise TypeError(f"{t.__name__} already has a handler ({HANDLERS[t].__name__})")
            HANDLERS[t] = fn
        return fn
    return register


@dataclass
class Findings:
    """Everything the engine measured last, what `Export` writes into a snapshot: the detection,
    the last probe (and the state it was taken in), the last complete measurement and generation
    (and what they measured), the last comparison and the last sweep of each kind."""
    detection: object = None
    probe: object = None
    probe_state: tuple | None = None  # (prompt, session.state_key()) the probe was taken in
    measurement: object = None  # metrics.Measurement of the last complete refresh
    generation: dict = field(default_factory=dict)
    measured_what: tuple | None = None  # (state_key, prompt, max_new_tokens, eval_text) of the two above
    comparison: dict | None = None  # {"variants", "results"} (JSON form)
    sweeps: dict = field(default_factory=dict)  # kind -> {"kind", "rows", "meta"} (JSON form)

    def fresh(self, now: tuple) -> bool:
        """The measurement and generation are of the state `now` (not of an earlier one)."""
        return self.measured_what == now


# -- edits: one step each through the ledger --------------------------------------------------
@handles(ev.Refresh)
def _refresh(engine, s, r) -> bool:
    return True


@handles(ev.Call)
def _call(engine, s, r: ev.Call) -> bool:
    r.fn(s)
    return r.refresh


@handles(ev.SetPrompt)
def _set_prompt(engine, s, r: ev.SetPrompt) -> bool:
    s.encode(r.prompt)  # validates
    engine.prompt = r.prompt
    return True


@handles(ev.NameSpike)
def _name_spike(engine, s, r: ev.NameSpike) -> bool:
    sw = s.name_super_weight(r.layer, r.row, r.col, label=r.label, source="user", expert=r.expert)
    probe = engine.findings.probe
    if sw.sa_magnitude is None and probe is not None:
        sw.sa_magnitude = probe.layers[r.layer].out_max
    return True


@handles(ev.Prune)
def _prune(engine, s, r: ev.Prune) -> bool:
    (s.ledger.prune if r.on else s.ledger.restore)(*r.key)
    return True


@handles(ev.Restore)
def _restore(engine, s, r: ev.Restore) -> bool:
    s.ledger.restore(*r.key)
    s.sa_restore.discard(r.key)
    return True


@handles(ev.Scale)
def _scale(engine, s, r: ev.Scale) -> bool:
    s.ledger.scale(*r.key, r.factor)
    return True


@handles(ev.RestoreAll)
def _restore_all(engine, s, r) -> bool:
    s.reset()
    return True


@handles(ev.PruneFindings)
def _prune_findings(engine, s, r) -> bool:
    from swtui.core.verdicts import Verdict

    keys = [sw.key for sw in s.super_weights if sw.verdict is not None and Verdict(sw.verdict).finding]
    if not keys:
        raise SwtuiError("no weight judged a super weight or a group member: detect (d) first")
    if all(s.ledger.edit(k) is not None and s.ledger.edit(k).op == "prune" for k in keys):
        for k in keys:
            s.ledger.restore(*k)
        engine.emit(ev.Notice(f"restored the {len(keys)} findings"))
    else:
        for k in keys:
            s.ledger.prune(*k)
        where = ", ".join(f"{k[0]}[{k[1]},{k[2]}]" + (f"·e{k[3]}" if len(k) > 3 else "") for k in keys)
        engine.emit(ev.Notice(f"pruned every finding: {where}"))
    return True


@handles(ev.ToggleSA)
def _toggle_sa(engine, s, r: ev.ToggleSA) -> bool:
    s.set_sa_restore(*r.key, on=r.key not in s.sa_restore)
    return True


@handles(ev.ToggleWriteAblation)
def _toggle_write(engine, s, r: ev.ToggleWriteAblation) -> bool:
    active = [w for w in s.zero_writes if w[0] == r.layer]
    for at, ch in active or [(r.layer, r.channel)]:
        s.set_zero_write(at, ch, on=not active)
    return True


@handles(ev.Quantize)
def _quantize(engine, s, r: ev.Quantize) -> bool:
    from swtui.core.quant.session import apply_quant_config

    apply_quant_config(s, r.config, engine.progress, engine.cancel_token)
    return True


# -- work that streams its own events ---------------------------------------------------------
@handles(ev.Detect)
def _detect(engine, s, r: ev.Detect) -> bool:
    """Detection, streamed: the chart after the first probe, each candidate as it is found
    (adopted at once, marked as being measured), each impact as it is known."""
    from swtui.core.detection.detect import DetectionListener, DetectOptions, adopt, adopt_candidate, detect
    from swtui.core.engine.rows import detection_done

    f = engine.findings

    def probed(d) -> None:
        f.detection = d
        f.probe, f.probe_state = d.probe, (d.probe.prompt, s.state_key())
        engine.emit(engine.probe_event(d.probe, d.threshold))

    def found(cand) -> None:
        adopt_candidate(s, cand)
        engine.emit_state()

    opts = DetectOptions(eval_text=engine.eval_text, **({"prompt": r.prompt} if r.prompt else {}))
    with engine.detecting():
        f.detection = detect(s, opts, engine.progress, engine.cancel_token,
                             DetectionListener(probed, found, lambda cand: engine.emit_state()))
    adopt(s, f.detection)
    engine.emit(detection_done(f.detection))
    return True


@handles(ev.Compare)
def _compare(engine, s, r: ev.Compare) -> bool:
    engine.findings.comparison = compare_work(s, r.variants, engine.prompt, engine.max_new_tokens, engine.emit,
                                              engine.progress, engine.cancel_token, engine.throttle())
    return False


@handles(ev.Sweep)
def _sweep(engine, s, r: ev.Sweep) -> bool:
    engine.findings.sweeps[r.what] = sweep_work(s, r, engine.emit, engine.progress, engine.cancel_token)
    return False


@handles(ev.Export)
def _export(engine, s, r: ev.Export) -> bool:
    from swtui.core.snapshot.snapshot import build_snapshot, write_snapshot

    f = engine.findings
    # metrics of another state (an edit in the same batch, before its refresh) are not this one's
    fresh = f.fresh((s.state_key(), engine.prompt, engine.max_new_tokens, engine.eval_text))
    data = build_snapshot(s, detection=f.detection, probe=f.probe, measurement=f.measurement if fresh else None,
                          generation=f.generation if fresh else None, prompt=engine.prompt,
                          max_new_tokens=engine.max_new_tokens, comparison=f.comparison, sweeps=f.sweeps,
                          eval_text=engine.eval_text)
    path = write_snapshot(data, r.out_dir, svg=r.svg)
    engine.emit(ev.Exported(str(path)))
    return False


@handles(ev.ApplySnapshot)
def _apply_snapshot(engine, s, r: ev.ApplySnapshot) -> bool:
    """Re-apply the snapshot given at start: its whole state, its generation prompt and length,
    its comparison and sweeps. A weights hash or state that differs raises (HashMismatch unless
    `force`, StateMismatch); the metrics are compared after the refresh that follows."""
    from swtui.core.snapshot.snapshot import apply_snapshot

    data = engine.snapshot
    engine.progress("re-applying the snapshot", None)
    for note in apply_snapshot(s, data, force=r.force, progress=engine.progress, cancel=engine.cancel_token):
        engine.emit(ev.Notice(note))
    if data["prompts"]["generation"]:
        engine.prompt = data["prompts"]["generation"]
    engine.max_new_tokens = data["prompts"]["max_new_tokens"]
    engine.findings.comparison = data["comparison"]
    engine.findings.sweeps = dict(data["sweeps"])
    engine.snapshot_check = None if r.force else (s.state_key(), data)
    return True


def handler_for(request: ev.Request) -> Handler:
    try:
        return HANDLERS[type(request)]
    except KeyError:
        raise SwtuiError(f"the engine does not serve {type(request).__name__}") from None


# -- the long analyses as background work (events out, cancellable) ---------------------------
def compare_work(session, variants: tuple[ev.Variant, ...], prompt: str, max_new_tokens: int, emit, progress, cancel,
                 throttle) -> dict:
    """Run a comparison and stream it as events (generated text at `throttle`'s pace); returns its
    JSON form {"variants", "results"} (what a snapshot keeps)."""
    from swtui.core.evidence.variants import compare

    def on_token(name: str, tid: int, text: str) -> None:
        if throttle.ready(name):
            emit(ev.VariantToken(name, text))

    results: dict[str, ev.Metrics] = {}

    def on_result(name: str, m: ev.Metrics) -> None:
        results[name] = m
        emit(ev.VariantMeasured(name, m))

    try:
        compare(session, list(variants), prompt, max_new_tokens, progress=progress, cancel=cancel,
                on_result=on_result, on_token=on_token)
    except Cancelled:
        emit(ev.ComparisonDone(tuple(variants), dict(results), cancelled=True))
        raise
    emit(ev.ComparisonDone(tuple(variants), dict(results)))
    return {"variants": [v.to_dict() for v in variants], "results": {n: m.to_dict() for n, m in results.items()}}


def sweep_work(session, request, emit, progress, cancel) -> dict:
    """Run a scale or quant sweep as events; returns its JSON form {"kind", "rows", "meta"} (what
    a snapshot keeps)."""
    from swtui.core.evidence.sweeps import quant_meta, quant_sweep, scale_sweep

    rows: list = []

    def on_row(row) -> None:
        rows.append(row)
        emit(ev.SweepRow(request.what, row))

    if request.what == "scale":
        key = tuple(request.key) if request.key else None
        if key is None:
            raise UserInputError("select a super weight to sweep its scale")
        meta = ev.ScaleMeta(key, session.ledger.pristine_value(*key))
        run = lambda: scale_sweep(session, key, request.factors, None, progress, cancel, on_row)  # noqa: E731
    elif request.what == "quant":
        from swtui.core.evidence.metrics import perplexity

        # the baseline's perplexity only: no generation or stopword pass for a figure in the title
        meta = quant_meta(session, request.bits, request.clip_z, perplexity(session, None, variants=("base",))["base"])
        run = lambda: quant_sweep(session, request.bits, list(request.blocks), request.clip_z, None,  # noqa: E731
                                  progress, cancel, on_row)
    else:
        raise UserInputError(f"unknown sweep {request.what!r}")
    try:
        run()
    except Cancelled:
        emit(ev.SweepDone(request.what, tuple(rows), meta, cancelled=True))
        raise
    emit(ev.SweepDone(request.what, tuple(rows), meta))
    return {"kind": request.what, "rows": [r.to_json() for r in rows], "meta": meta.to_json()}
