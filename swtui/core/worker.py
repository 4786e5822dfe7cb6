"""The inference thread: the only thread that touches the model.

The UI calls `submit(request)`; the thread emits `events.*` through `emit` (which must be
thread-safe, e.g. Textual's `post_message`). Requests queued while the thread is busy cancel the
stale refresh (a new regenerate cancels the old one); consecutive edits are applied in order and
followed by a single refresh. Any exception becomes a `Failed` event and the thread lives on.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from typing import Callable

from swtui.core import events as ev
from swtui.core.errors import Cancelled, SwtuiError

class InferenceWorker:
    def __init__(self, emit: Callable[[ev.Event], None], source: str | None, load_options=None,
                 prompt: str = "The capital of France is", max_new_tokens: int = 24,
                 detect_on_load: bool = True, session=None, snapshot: dict | None = None,
                 snapshot_force: bool = False, leave_core_for_ui: bool = False, token_interval: float = 0.05):
        self.emit = emit
        self.source = source
        self.load_options = load_options
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.detect_on_load = detect_on_load
        self.session = session
        self.snapshot = snapshot
        self.snapshot_force = snapshot_force  # open the snapshot even if the weight hash differs
        self.leave_core_for_ui = leave_core_for_ui
        self.token_interval = token_interval
        self.detection = None
        self.last_generation: dict = {}
        self.comparison: dict | None = None  # the last comparison: {"variants", "results"}
        self.sweeps: dict = {}  # kind -> {"kind", "rows", "meta"}: the last sweep of each kind
        self.last_stopwords: dict = {}
        self.last_probe = None
        self._probe_state = None  # (prompt, session.state_key()) that last_probe was taken in
        self.quant_mode = "full precision"
        self._detecting = False
        self._running = ""  # what the thread works on now ("refresh", "Detect", "Quantize", …)
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swtui-inference", daemon=True)

    # -- UI side --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, request: ev.Request) -> None:
        # a running refresh (probe, generations, metrics) is stale once anything new arrives; a
        # detection, quantization or edit is never cancelled by another request, only by esc
        if self._busy.is_set() and self._running in ("refresh", "Refresh"):
            self._cancel.set()
        self._queue.put(request)

    def cancel(self) -> None:
        """Stop the running work, and drop refreshes, detections, comparisons and sweeps still queued
        (edits stay)."""
        self._cancel.set()
        kept = []
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(request, (ev.Refresh, ev.Detect, ev.Compare, ev.Sweep)):
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
            if getattr(self, "_threads_before", None):
                import torch

                torch.set_num_threads(self._threads_before)

    def _serve(self) -> None:
        if not self._guard(self._load, "loading"):
            return
        if self.snapshot is not None:
            self._queue.put(ev.Call(lambda s: self.apply_snapshot(s, force=self.snapshot_force), refresh=True))
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
            if any(isinstance(r, ev.Stop) for r in batch):
                return
            self._cancel.clear()
            needs_refresh = False
            for request in batch:
                needs_refresh |= bool(self._guard(lambda r=request: self._handle(r), type(request).__name__))
            if needs_refresh and self._queue.empty():
                self._guard(self._refresh, "refresh")

    def _guard(self, fn, what: str):
        """Run fn, turning every failure into a Failed event; returns fn's result or None."""
        self._busy.set()
        self._running = what
        self.emit(ev.Busy(True, what))
        try:
            return fn()
        except Cancelled:
            if self._queue.empty():  # the user cancelled; a superseded refresh needs no notice
                self.emit(ev.Notice(f"{what}: cancelled"))
        except SwtuiError as err:
            self.emit(ev.Failed(err.title, str(err)))
        except MemoryError:
            self.emit(ev.Failed("Out of memory", f"{what} ran out of host memory; the model state is unchanged"))
        except Exception as err:  # noqa: BLE001 - the thread must survive anything
            title = "Out of memory" if "out of memory" in str(err).lower() else f"{what} failed"
            self.emit(ev.Failed(title, f"{type(err).__name__}: {err}"))
            traceback.print_exc()
        finally:
            self._busy.clear()
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
        self.emit(ev.Loaded({"name": s.loaded.name, "source": s.loaded.source, "arch": s.adapter.arch,
                             "layers": s.adapter.n_layers, "params": s.loaded.n_params,
                             "device": str(s.device), "dtype": s.loaded.dtype}))
        self._emit_state()
        return True

    def _handle(self, r: ev.Request) -> bool:
        """Apply one request; returns True when the view needs a refresh."""
        s = self.session
        if s is None:
            raise SwtuiError("no model is loaded")
        if isinstance(r, ev.Detect):
            self._detect(r.prompt)
            return True
        if isinstance(r, ev.Refresh):
            return True
        if isinstance(r, ev.Call):
            r.fn(s)
            self._emit_state()
            return r.refresh
        if isinstance(r, ev.SetPrompt):
            s.encode(r.prompt)  # validates
            self.prompt = r.prompt
        elif isinstance(r, ev.NameSpike):
            sw = s.name_super_weight(r.layer, r.row, r.col, label=r.label, source="user")
            if sw.sa_magnitude is None and self.last_probe is not None:
                sw.sa_magnitude = self.last_probe.layers[r.layer].out_max
        elif isinstance(r, ev.Prune):
            if r.on:
                s.ledger.prune(*r.key)
            else:
                s.ledger.restore(*r.key)
        elif isinstance(r, ev.Scale):
            s.ledger.scale(*r.key, r.factor)
        elif isinstance(r, ev.Restore):
            s.ledger.restore(*r.key)
            s.sa_restore.discard(r.key)
        elif isinstance(r, ev.RestoreAll):
            self._restore_all()
        elif isinstance(r, ev.ToggleSA):
            s.set_sa_restore(*r.key, on=r.key not in s.sa_restore)
        elif isinstance(r, ev.ToggleWriteAblation):
            active = [w for w in s.zero_writes if w[0] == r.layer]
            for layer, channel in active or [(r.layer, r.channel)]:
                s.set_zero_write(layer, channel, on=not active)
        elif isinstance(r, ev.Quantize):
            self._quantize(r.config)
        elif isinstance(r, ev.Export):
            self._export(r)
            return False
        elif isinstance(r, (ev.Compare, ev.Sweep)):
            from swtui.core import variants

            if isinstance(r, ev.Compare):
                self.comparison = variants.compare_work(s, r.variants, self.prompt, self.max_new_tokens, self.emit,
                                                        self._progress, self._cancel, self.token_interval)
            else:
                self.sweeps[r.kind] = variants.sweep_work(s, r, self.emit, self._progress, self._cancel)
            return False
        self._emit_state()
        return True

    def apply_snapshot(self, session, force: bool = False) -> None:
        """Re-apply the snapshot given at start (raises HashMismatch unless `force`)."""
        from swtui.core.snapshot import apply_snapshot

        self._progress("re-applying the snapshot", None)
        for note in apply_snapshot(session, self.snapshot, force=force, progress=self._progress, cancel=self._cancel):
            self.emit(ev.Notice(note))
        self.prompt = self.snapshot["prompts"].get("generation") or self.prompt

    def _restore_all(self) -> None:
        self.session.reset()
        self.quant_mode = "full precision"

    def _quantize(self, config: dict | None) -> None:
        from swtui.core.quant_session import apply_quant_config

        self.quant_mode = apply_quant_config(self.session, config, self._progress, self._cancel)

    def _export(self, r: ev.Export) -> None:
        from swtui.core.snapshot import build_snapshot, write_snapshot

        data = build_snapshot(self.session, detection=self.detection, probe=self.last_probe,
                              generation=self.last_generation, stopwords=self.last_stopwords,
                              prompt=self.prompt, max_new_tokens=self.max_new_tokens,
                              comparison=self.comparison, sweeps=self.sweeps)
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

        opts = DetectOptions(prompt=prompt) if prompt else DetectOptions()
        self._detecting = True
        self._edits_before = self.session.ledger.count + len(self.session.sa_restore)
        try:
            self.detection = detect(self.session, opts, self._progress, self._cancel,
                                    DetectionListener(probed, found, measured))
        finally:
            self._detecting = False
            self._emit_state()
        adopt(self.session, self.detection)
        self.emit(ev.DetectionDone([c.to_dict() for c in self.detection.candidates], self.detection.stop_reason,
                                   [g.to_dict() for g in self.detection.groups]))
        self._emit_state()

    def _probe_event(self, probe, threshold: float) -> ev.ProbeDone:
        s = self.session
        layers = []
        for st in probe.layers:
            row = st.to_dict()
            try:
                row["weight"] = s.ledger.current_value(st.layer, st.out_channel, st.in_channel)
            except SwtuiError:
                row["weight"] = None
            layers.append(row)
        return ev.ProbeDone(layers, threshold, probe.tokens, probe.prompt)

    def _emit_state(self) -> None:
        s = self.session
        rows = []
        for sw in s.super_weights:
            row = sw.to_dict()
            row["measuring"] = self._detecting and sw.is_super is None
            # while detection zeroes candidates temporarily, their state is not the user's
            row["state"] = "measuring…" if row["measuring"] else s.state_of(sw.key)
            row["current"] = sw.value if row["measuring"] else s.ledger.current_value(*sw.key)
            edit = s.ledger.edit(sw.key)
            row["pruned"] = edit is not None and edit.op == "prune"
            row["sa_restored"] = sw.key in s.sa_restore
            rows.append(row)
        edits = self._edits_before if self._detecting else s.ledger.count + len(s.sa_restore) + len(s.zero_writes)
        self.emit(ev.StateChanged(rows, edits, self.quant_mode, s.batchable,
                                  self.prompt))

    def _refresh(self) -> None:
        from swtui.core import metrics
        from swtui.core.detect import DEFAULT_PROMPT, DetectOptions, SpikeRule, run_probe

        s = self.session
        prompt = self.detection.probe.prompt if self.detection else DEFAULT_PROMPT
        state = s.state_key()
        if self.last_probe is not None and self._probe_state == (prompt, state):
            probe = self.last_probe  # nothing changed since that probe (e.g. right after detection)
        else:
            probe = run_probe(s, prompt)
        self.last_probe, self._probe_state = probe, (prompt, state)
        threshold = (self.detection or SpikeRule.from_probe(probe, DetectOptions())).threshold
        self.emit(self._probe_event(probe, threshold))
        self._check_cancel()
        cancelled = False
        texts: dict = {}

        last_emit: dict = {}

        def on_token(variant: str, tid: int, text: str) -> None:
            texts[variant] = text
            now = time.monotonic()
            if now - last_emit.get(variant, 0.0) >= self.token_interval:  # at most ~20 redraws/s
                last_emit[variant] = now
                self.emit(ev.TokenStreamed(variant, text))

        try:
            texts = metrics.generate(s, self.prompt, self.max_new_tokens, cancel=self._cancel, on_token=on_token)
        except Cancelled:
            cancelled = True
        self.last_generation = dict(texts)
        base, cur = texts.get("base", ""), texts.get("current", "")
        self.emit(ev.GenerationDone(dict(texts), metrics.first_divergence(base, cur), s.batchable, cancelled))
        if cancelled:
            raise Cancelled("generation cancelled")
        report = metrics.stopword_mass(s)
        self.last_stopwords = report.to_dict()
        self.emit(ev.StopwordsDone(self.last_stopwords))
        self._check_cancel()
        ppl = metrics.perplexity(s)
        self.last_stopwords["perplexity"] = ppl
        self.emit(ev.StopwordsDone(self.last_stopwords, ppl))
