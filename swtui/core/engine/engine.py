"""The engine: the one thread that owns the model, served through the typed protocol.

This module schedules (the queue, supersession, cancel, coalescing, failures as events) and
refreshes the view; what each request does is its handler's (`swtui.core.engine.handlers`).

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
from contextlib import contextmanager
from typing import Callable

from swtui.core.engine import protocol as ev
from swtui.core.defaults import GEN_PROMPT
from swtui.core.errors import Cancelled, SwtuiError, check_cancel
from swtui.core.engine.handlers import Findings, handler_for
from swtui.core.engine.protocol import CANCELLABLE, LABELS, SUPERSEDES
from swtui.core.engine.rows import super_weight_rows
from swtui.core.throttle import TOKEN_INTERVAL, Throttle


class Engine:
    def __init__(self, emit: Callable[[ev.Event], None], source: str | None, load_options=None,
                 prompt: str = GEN_PROMPT, max_new_tokens: int = 24,
                 detect_on_load: bool = True, session=None, detection=None, snapshot: dict | None = None,
                 snapshot_force: bool = False, eval_text: str | None = None, threads: int | None = None,
                 token_interval: float = TOKEN_INTERVAL):
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
        #: torch's intra-op threads while the engine runs (None: torch's own, every core); restored after
        self.threads = threads
        self.token_interval = token_interval
        #: what was measured last (detection, probe, measurement, comparison, sweeps): export reads it
        self.findings = Findings(detection=detection)
        #: (state_key, snapshot) after a snapshot was re-applied, until the first complete refresh
        #: of that state compares its metrics with the snapshot's
        self.snapshot_check: tuple | None = None
        self._detecting = False
        self._edits_before = 0
        self._running: str | None = None  # the kind of request the thread works on now
        self._threads_before: int | None = None
        self._queue: queue.Queue = queue.Queue()
        self._submitting = threading.Lock()  # a submit's drop-and-put is one step for other submitters
        #: the one cancel token: esc (or a superseding request) sets it, every piece of work checks it
        self.cancel_token = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swtui-engine", daemon=True)

    # views of the findings kept under their old names (the CLI and tests read them)
    @property
    def last_measurement(self):
        return self.findings.measurement

    @property
    def last_probe(self):
        return self.findings.probe

    @property
    def comparison(self) -> dict | None:
        return self.findings.comparison

    @property
    def sweeps(self) -> dict:
        return self.findings.sweeps

    # -- UI side --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, request: ev.Request) -> None:
        stale = SUPERSEDES[request.kind]
        with self._submitting:
            if self._busy.is_set() and self._running in stale:
                self.cancel_token.set()
            self._drop_queued(stale)
            self._queue.put(request)

    def cancel(self) -> None:
        """esc: stop the running work, and drop the refreshes, detections, comparisons and sweeps
        still queued (edits and quantizations stay)."""
        with self._submitting:
            self.cancel_token.set()
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
        self.cancel_token.set()
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
    def progress(self, stage: str, fraction: float | None) -> None:
        self.emit(ev.Progress(stage, fraction))

    def throttle(self) -> Throttle:
        """A fresh rate limit for one piece of streaming work (generated text)."""
        return Throttle(self.token_interval)

    @contextmanager
    def detecting(self):
        """While detection zeroes candidates temporarily, the state it reports is the user's."""
        self._detecting, self._edits_before = True, self.session.edit_count
        try:
            yield
        finally:
            self._detecting = False

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
            self.cancel_token.clear()
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
            self._running = None
            if self.session is not None:
                self.emit_state()  # a failed quantization or edit shows the state it left
            self.emit(ev.Busy(False, ""))
            self._busy.clear()  # idle only once Busy(False) is out: a waiter sees the whole spell
        return None

    def _load(self) -> bool:
        if self.threads:
            import torch

            # every core by default: on 2 cores the UI's keys stay within budget with torch on both
            # (docs/performance.md, "Threads"); a caller may ask for fewer (tests on a busy machine)
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        if self.session is None:
            from swtui.core.model.loading import load_model
            from swtui.core.edits.session import Session

            loaded = load_model(self.source, self.load_options, self.progress)
            self.session = Session(loaded, down_proj=getattr(self.load_options, "down_proj", None))
        s = self.session
        self.emit(ev.Loaded(s.info()))
        return True

    def _handle(self, r: ev.Request) -> bool:
        """Apply one request through its handler (`handlers.HANDLERS`); True when the view needs
        a refresh."""
        if self.session is None:
            raise SwtuiError("no model is loaded")
        return handler_for(r)(self, self.session, r)

    def _check_snapshot_metrics(self, m) -> None:
        """After the first complete refresh of a reopened snapshot's state: its metrics must be
        the snapshot's (a Failed event says which differ; a Notice which matched or were not saved)."""
        from swtui.core.snapshot.snapshot import OTHER_TEXT, StateMismatch, compare_metrics

        key, data = self.snapshot_check
        self.snapshot_check = None
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

    def probe_event(self, probe, threshold: float) -> ev.ProbeDone:
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
            layers.append(ev.LayerRow.of(st, weight))
        return ev.ProbeDone(layers, threshold, probe.tokens, probe.prompt)

    def emit_state(self) -> None:
        s = self.session
        # while detection zeroes candidates temporarily, their state is not the user's
        edits = self._edits_before if self._detecting else s.edit_count
        from swtui.core.quant.session import held_out_keys

        self.emit(ev.StateChanged(super_weight_rows(s, measuring=self._detecting), edits, s.quant_label, s.batchable, self.prompt,
                                  tuple(tuple(k) for k in held_out_keys(s))))

    def _refresh(self) -> None:
        """Probe (unless this state's probe is known), generate and measure the current state."""
        from swtui.core.evidence import generation, metrics
        from swtui.core.detection.detect import DEFAULT_PROMPT as PROBE_PROMPT, DetectOptions, SpikeRule, run_probe

        s, f = self.session, self.findings
        f.measurement, f.generation = None, {}  # until this state is measured, completely
        prompt = f.detection.probe.prompt if f.detection else PROBE_PROMPT
        state = s.state_key()
        f.measured_what = (state, self.prompt, self.max_new_tokens, self.eval_text)
        if f.probe is None or f.probe_state != (prompt, state):  # else: nothing changed since that probe
            f.probe, f.probe_state = run_probe(s, prompt), (prompt, state)
        threshold = (f.detection or SpikeRule.from_probe(f.probe, DetectOptions())).threshold
        self.emit(self.probe_event(f.probe, threshold))
        check_cancel(self.cancel_token)
        texts: dict = {}
        generated: dict = {}
        throttle = self.throttle()

        def on_token(variant: str, tid: int, text: str) -> None:
            texts[variant] = text
            if throttle.ready(variant):
                self.emit(ev.TokenStreamed(variant, text))

        def generation_done(done: dict, cancelled: bool = False) -> None:
            generated.update(done)
            if not cancelled:
                f.generation = dict(done)
            base, cur = done.get("base", ""), done.get("current", "")
            self.emit(ev.GenerationDone(dict(done), generation.first_divergence(base, cur), s.batchable, cancelled))

        try:
            m = metrics.measure(s, self.prompt, self.max_new_tokens, self.eval_text, cancel=self.cancel_token,
                                on_token=on_token, on_generation=generation_done,
                                on_stopwords=lambda report: self.emit(ev.StopwordsDone(report)))
        except Cancelled:
            if not generated:
                generation_done(texts, cancelled=True)
            raise
        f.measurement = m
        self.emit(ev.Measured(dict(m.metrics)))
        if self.snapshot_check is not None:
            self._check_snapshot_metrics(m)
