"""The engine: the one thread that owns the model, served through the typed protocol.

The UI calls `submit(request)`; the thread emits `protocol` events through `emit` (which must be
thread-safe, e.g. Textual's `post_message`). What a new request does to work already there is
decided by request *kind* (`protocol.SUPERSEDES`): a refresh, being a view of the state, is
stale once anything else arrives and is cancelled; an edit, a detection, a quantization, a comparison or a
sweep is never cancelled by another request, only by `cancel()` (esc). Requests already waiting
are coalesced: the edits apply in order, followed by a single refresh. Any exception becomes a
`Failed` event and the thread lives on.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from typing import Callable

from swtui.core import protocol as ev
from swtui.core.defaults import GEN_PROMPT
from swtui.core.errors import Cancelled, SwtuiError
from swtui.core.protocol import CANCELLABLE, LABELS, SUPERSEDES


class Engine:
    def __init__(self, emit: Callable[[ev.Event], None], source: str | None, load_options=None,
                 prompt: str = GEN_PROMPT, max_new_tokens: int = 24,
                 detect_on_load: bool = True, session=None, detection=None, snapshot: dict | None = None,
                 snapshot_force: bool = False, eval_text: str | None = None, leave_core_for_ui: bool = False,
                 token_interval: float = 0.05):
        self.emit = emit
        self.source = source
        self.load_options = load_options
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.detect_on_load = detect_on_load
        self.session = session
        self.snapshot = snapshot
        self.snapshot_force = snapshot_force  # open the snapshot even if the weight hash differs
        self.eval_text = eval_text  # the perplexity's text (None: the bundled one)
        self.leave_core_for_ui = leave_core_for_ui
        self.token_interval = token_interval
        self.detection = detection  # the last detection (its spike rule draws the chart's threshold)
        self.last_generation: dict = {}
        self.last_measurement = None  # metrics.Measurement of the last complete refresh
        #: what last_measurement / last_generation measured: (state_key, prompt, max_new_tokens, eval_text)
        self._measured_what: tuple | None = None
        self.comparison: dict | None = None  # the last comparison: {"variants", "results"}
        self.sweeps: dict = {}  # what -> {"kind", "rows", "meta"}: the last sweep of each kind
        self.last_probe = None
        #: (state_key, snapshot) after a snapshot was re-applied, until the first complete refresh
        #: of that state compares its metrics with the snapshot's
        self._snapshot_check: tuple | None = None
        self._probe_state = None  # (prompt, session.state_key()) that last_probe was taken in
        self._detecting = False
        self._edits_before = 0
        self._running: str | None = None  # the kind of request the thread works on now
        self._threads_before: int | None = None
        self._queue: queue.Queue = queue.Queue()
        self._submitting = threading.Lock()  # a submit's drop-and-put is one step for other submitters
        self._cancel = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swtui-engine", daemon=True)

    # -- UI side --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, request: ev.Request) -> None:
        stale = SUPERSEDES[request.kind]
        with self._submitting:
            if self._busy.is_set() and self._running in stale:
                self._cancel.set()
            self._drop_queued(stale)
            self._queue.put(request)

    def cancel(self) -> None:
        """esc: stop the running work, and drop the refreshes, detections, comparisons and sweeps
        still queued (edits and quantizations stay)."""
        with self._submitting:
            self._cancel.set()
            self._drop_queued(CANCELLABLE)

    def _drop_queued(self, kinds: frozenset[str]) -> None:
        kept = []
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request.kind not in kinds:
                kept.append(request)
        for request in kept:
            self._queue.put(request)

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to finish; True if it ended within `timeout` seconds."""
        self._cancel.set()
        self._queue.put(ev.Stop())
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def busy(self) -> bool:
        """True while the thread works on a request."""
        return self._busy.is_set()

    @property
    def idle(self) -> bool:
        """True when a model is loaded, nothing runs and nothing is queued."""
        return self.session is not None and not self._busy.is_set() and self._queue.empty()

    def wait_idle(self, timeout: float = 60.0, settle: float = 0.2) -> bool:
        """Block until the thread has been idle for `settle` seconds (not from the UI thread)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            if self.idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            time.sleep(0.02)
        return False

    @property
    def daemon(self) -> bool:
        """The thread never keeps the process alive."""
        return self._thread.daemon

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- thread side ----------------------------------------------------------------------------
    def _progress(self, stage: str, fraction: float | None) -> None:
        self.emit(ev.Progress(stage, fraction))

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            if self._threads_before:
                import torch

                torch.set_num_threads(self._threads_before)

    def _serve(self) -> None:
        if not self._guard(self._load, "load", "loading"):
            return
        if self.snapshot is not None:
            self._queue.put(ev.ApplySnapshot(force=self.snapshot_force))
        elif self.detect_on_load:
            self._queue.put(ev.Detect())
        else:
            self._queue.put(ev.Refresh())
        while True:
            first = self._queue.get()
            batch = [first]
            while True:  # drain: coalesce everything already waiting
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(r.kind == "stop" for r in batch):
                return
            self._cancel.clear()
            needs_refresh = False
            for request in batch:
                label = LABELS.get(type(request).__name__, type(request).__name__)
                needs_refresh |= bool(self._guard(lambda r=request: self._handle(r), request.kind, label))
            if needs_refresh and self._queue.empty():
                self._guard(self._refresh, "refresh", "refresh")

    def _guard(self, fn, kind: str, label: str):
        """Run fn, turning every failure into a Failed event; returns fn's result or None."""
        self._running = kind
        self._busy.set()
        self.emit(ev.Busy(True, label))
        try:
            return fn()
        except Cancelled:
            if self._queue.empty():  # the user cancelled; a superseded refresh needs no notice
                self.emit(ev.Notice(f"{label}: cancelled"))
        except SwtuiError as err:
            self.emit(ev.Failed(err.title, str(err)))
        except MemoryError:
            self.emit(ev.Failed("Out of memory", f"{label} ran out of host memory; the model state is unchanged"))
        except Exception as err:  # noqa: BLE001 - the thread must survive anything
            title = "Out of memory" if "out of memory" in str(err).lower() else f"{label} failed"
            self.emit(ev.Failed(title, f"{type(err).__name__}: {err}"))
            traceback.print_exc()
        finally:
            self._busy.clear()
            self._running = None
            if self.session is not None:
                self._emit_state()  # a failed quantization or edit shows the state it left
            self.emit(ev.Busy(False, ""))
        return None

    def _load(self) -> bool:
        if self.leave_core_for_ui:
            import os

            import torch

            # torch's intra-op pool would otherwise take every core and starve the UI thread
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        if self.session is None:
            from swtui.core.loading import load_model
            from swtui.core.session import Session

            loaded = load_model(self.source, self.load_options, self._progress)
            self.session = Session(loaded, down_proj=getattr(self.load_options, "down_proj", None))
        s = self.session
        self.emit(ev.Loaded(s.info()))
        return True

    def _handle(self, r: ev.Request) -> bool:
        """Apply one request; returns True when the view needs a refresh."""
        s = self.session
        if s is None:
            raise SwtuiError("no model is loaded")
        match r:
            case ev.Detect(prompt=prompt):
                self._detect(prompt)
            case ev.Refresh():
                pass
            case ev.Call(fn=fn, refresh=refresh):
                fn(s)
                return refresh
            case ev.ApplySnapshot(force=force):
                self._apply_snapshot(force)
            case ev.SetPrompt(prompt=prompt):
                s.encode(prompt)  # validates
                self.prompt = prompt
            case ev.NameSpike(layer=layer, row=row, col=col, label=label, expert=expert):
                sw = s.name_super_weight(layer, row, col, label=label, source="user", expert=expert)
                if sw.sa_magnitude is None and self.last_probe is not None:
                    sw.sa_magnitude = self.last_probe.layers[layer].out_max
            case ev.Prune(key=key, on=True):
                s.ledger.prune(*key)
            case ev.Prune(key=key, on=False):
                s.ledger.restore(*key)
            case ev.Restore(key=key):
                s.ledger.restore(*key)
                s.sa_restore.discard(key)
            case ev.Scale(key=key, factor=factor):
                s.ledger.scale(*key, factor)
            case ev.RestoreAll():
                s.reset()
            case ev.ToggleSA(key=key):
                s.set_sa_restore(*key, on=key not in s.sa_restore)
            case ev.ToggleWriteAblation(layer=layer, channel=channel):
                active = [w for w in s.zero_writes if w[0] == layer]
                for at, ch in active or [(layer, channel)]:
                    s.set_zero_write(at, ch, on=not active)
            case ev.Quantize(config=config):
                from swtui.core.quant_session import apply_quant_config

                apply_quant_config(s, config, self._progress, self._cancel)
            case ev.Export():
                self._export(r)
                return False
            case ev.Compare(variants=variants):
                from swtui.core.variants import compare_work

                self.comparison = compare_work(s, variants, self.prompt, self.max_new_tokens, self.emit,
                                               self._progress, self._cancel, self.token_interval)
                return False
            case ev.Sweep(what=what):
                from swtui.core.variants import sweep_work

                self.sweeps[what] = sweep_work(s, r, self.emit, self._progress, self._cancel)
                return False
            case _:
                raise SwtuiError(f"the engine does not serve {type(r).__name__}")
        return True

    def _apply_snapshot(self, force: bool) -> None:
        """Re-apply the snapshot given at start: its whole state, its generation prompt and
        length, its comparison and sweeps. A weights hash or state that differs raises
        (HashMismatch unless `force`, StateMismatch); the metrics are compared after the refresh
        that follows (`_check_snapshot_metrics`)."""
        from swtui.core.snapshot import apply_snapshot

        data = self.snapshot
        self._progress("re-applying the snapshot", None)
        for note in apply_snapshot(self.session, data, force=force, progress=self._progress, cancel=self._cancel):
            self.emit(ev.Notice(note))
        if data["prompts"]["generation"]:
            self.prompt = data["prompts"]["generation"]
        self.max_new_tokens = data["prompts"]["max_new_tokens"]
        self.comparison = data["comparison"]
        self.sweeps = dict(data["sweeps"])
        self._snapshot_check = None if force else (self.session.state_key(), data)

    def _check_snapshot_metrics(self, m) -> None:
        """After the first complete refresh of a reopened snapshot's state: its metrics must be
        the snapshot's (a Failed event says which differ; a Notice which matched or were not saved)."""
        from swtui.core.snapshot import OTHER_TEXT, StateMismatch, compare_metrics

        key, data = self._snapshot_check
        self._snapshot_check = None
        prompts = data["prompts"]
        if key != self.session.state_key() or (prompts["generation"] or self.prompt, prompts["max_new_tokens"]) != (
                self.prompt, self.max_new_tokens):  # edited before the first refresh finished
            self.emit(ev.Notice("snapshot metrics not compared: the state or prompt changed before they were measured"))
            return
        matches, problems = compare_metrics(data, m, self.eval_text)
        if problems:
            raise StateMismatch("the reopened session measures differently from the snapshot: " + "; ".join(problems))
        said = ", ".join(f"{k} {'matches' if v is True else v}" for k, v in matches.items())
        if matches["perplexity"] == OTHER_TEXT:
            said += " (open it with the text it was measured on to compare)"
        self.emit(ev.Notice(f"snapshot reproduced: state, weights; {said}"))

    def _export(self, r: ev.Export) -> None:
        from swtui.core.snapshot import build_snapshot, write_snapshot

        # metrics of another state (an edit in the same batch, before its refresh) are not this one's
        now = (self.session.state_key(), self.prompt, self.max_new_tokens, self.eval_text)
        fresh = self._measured_what == now
        data = build_snapshot(self.session, detection=self.detection, probe=self.last_probe,
                              measurement=self.last_measurement if fresh else None,
                              generation=self.last_generation if fresh else None,
                              prompt=self.prompt, max_new_tokens=self.max_new_tokens,
                              comparison=self.comparison, sweeps=self.sweeps, eval_text=self.eval_text)
        path = write_snapshot(data, r.out_dir, svg=r.svg)
        self.emit(ev.Exported(str(path)))

    def _detect(self, prompt: str | None) -> None:
        """Detection, streamed: the chart after the first probe, each candidate as it is found
        (adopted at once, marked as being measured), each impact as it is known."""
        from swtui.core.detect import DetectionListener, DetectOptions, adopt, adopt_candidate, detect

        def probed(d) -> None:
            self.detection = d
            self.last_probe, self._probe_state = d.probe, (d.probe.prompt, self.session.state_key())
            self.emit(self._probe_event(d.probe, d.threshold))

        def found(cand) -> None:
            adopt_candidate(self.session, cand)
            self._emit_state()

        def measured(cand) -> None:
            self._emit_state()

        opts = DetectOptions(eval_text=self.eval_text, **({"prompt": prompt} if prompt else {}))
        self._detecting = True
        self._edits_before = self.session.edit_count
        try:
            self.detection = detect(self.session, opts, self._progress, self._cancel,
                                    DetectionListener(probed, found, measured))
        finally:
            self._detecting = False
        adopt(self.session, self.detection)
        from swtui.core.findings import detection_done

        self.emit(detection_done(self.detection))

    def _probe_event(self, probe, threshold: float) -> ev.ProbeDone:
        s = self.session
        layers = []
        for st in probe.layers:
            try:
                # fused experts: the spiking expert's weight at its attributed col (the largest
                # input may be another expert's)
                col = st.in_channel if st.expert is None or st.attr_col is None else st.attr_col
                weight = s.ledger.current_value(st.layer, st.out_channel, col, st.expert)
            except SwtuiError:
                weight = None
            layers.append(ev.LayerRow(**st.to_dict(), weight=weight))
        return ev.ProbeDone(layers, threshold, probe.tokens, probe.prompt)

    def _emit_state(self) -> None:
        s = self.session
        # while detection zeroes candidates temporarily, their state is not the user's
        edits = self._edits_before if self._detecting else s.edit_count
        self.emit(ev.StateChanged(s.rows(measuring=self._detecting), edits, s.quant_label, s.batchable, self.prompt))

    def _refresh(self) -> None:
        from swtui.core import metrics
        from swtui.core.detect import DEFAULT_PROMPT as PROBE_PROMPT, DetectOptions, SpikeRule, run_probe

        s = self.session
        self.last_measurement = None  # until this state is measured
        self.last_generation = {}  # likewise: a snapshot saves only a complete generation of its state
        prompt = self.detection.probe.prompt if self.detection else PROBE_PROMPT
        state = s.state_key()
        self._measured_what = (state, self.prompt, self.max_new_tokens, self.eval_text)
        if self.last_probe is not None and self._probe_state == (prompt, state):
            probe = self.last_probe  # nothing changed since that probe (e.g. right after detection)
        else:
            probe = run_probe(s, prompt)
        self.last_probe, self._probe_state = probe, (prompt, state)
        threshold = (self.detection or SpikeRule.from_probe(probe, DetectOptions())).threshold
        self.emit(self._probe_event(probe, threshold))
        self._check_cancel()
        texts: dict = {}
        last_emit: dict = {}
        generated: dict = {}

        def on_token(variant: str, tid: int, text: str) -> None:
            texts[variant] = text
            now = time.monotonic()
            if now - last_emit.get(variant, 0.0) >= self.token_interval:  # at most ~20 redraws/s
                last_emit[variant] = now
                self.emit(ev.TokenStreamed(variant, text))

        def generation_done(done: dict, cancelled: bool = False) -> None:
            generated.update(done)
            if not cancelled:
                self.last_generation = dict(done)
            base, cur = done.get("base", ""), done.get("current", "")
            self.emit(ev.GenerationDone(dict(done), metrics.first_divergence(base, cur), s.batchable, cancelled))

        try:
            m = metrics.measure(s, self.prompt, self.max_new_tokens, self.eval_text, cancel=self._cancel,
                                on_token=on_token, on_generation=generation_done,
                                on_stopwords=lambda report: self.emit(ev.StopwordsDone(report.to_dict())))
        except Cancelled:
            if not generated:
                generation_done(texts, cancelled=True)
            raise
        self.last_measurement = m
        self.emit(ev.Measured(dict(m.metrics)))
        if self._snapshot_check is not None:
            self._check_snapshot_metrics(m)

