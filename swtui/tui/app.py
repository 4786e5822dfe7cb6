"""SwtuiApp: wires the widgets to the inference thread. All model work happens in that thread."""

from __future__ import annotations

import os

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer, ProgressBar

from swtui.core import events as ev
from swtui.core.worker import InferenceWorker
from swtui.tui.actions import bindings, find, why_not
from swtui.tui.commands import SwtuiCommands
from swtui.tui.comparing import ComparisonMixin
from swtui.tui.messages import EngineEvent
from swtui.tui.screens.ask import AskDialog, validate_factor, validate_prompt
from swtui.tui.screens.help import HelpScreen
from swtui.tui.themes import DEFAULT_THEME, load_themes
from swtui.tui.widgets.chart import VIEWS, LayerSpikeChart
from swtui.tui.widgets.compare import ComparisonPanel, GenerationDiff, StopwordTable
from swtui.tui.widgets.detail import LayerDetail
from swtui.tui.widgets.status import StatusBar
from swtui.tui.widgets.sw_table import SuperWeightTable


class SwtuiApp(ComparisonMixin, App):
    CSS_PATH = "app.tcss"
    TITLE = "swtui"
    COMMANDS = App.COMMANDS | {SwtuiCommands}
    BINDINGS = bindings()  # one registry: swtui.tui.actions

    def __init__(self, source: str | None = None, load_options=None, prompt: str | None = None,
                 max_new_tokens: int = 24, theme: str | None = None, session=None, detect_on_load: bool = True,
                 snapshot: dict | None = None, snapshot_force: bool = False):
        super().__init__()
        self.worker = InferenceWorker(self._emit, source, load_options,
                                      prompt=prompt or "The capital of France is", max_new_tokens=max_new_tokens,
                                      detect_on_load=detect_on_load, session=session, snapshot=snapshot,
                                      snapshot_force=snapshot_force, leave_core_for_ui=True)
        self.requested_theme = theme
        self.snapshot = snapshot
        self.events_seen: list[ev.Event] = []  # for tests and debugging
        self.sw_rows: list[dict] = []
        self.groups: list[dict] = []  # the last detection's writer groups
        # named quantization variants for the side-by-side comparison (a snapshot brings its own)
        self.variants: list[dict] = list(((snapshot or {}).get("comparison") or {}).get("variants") or [])
        self.layers: list[dict] = []
        self.tokens: list[str] = []
        self.threshold = 0.0
        self.busy_with = "starting"
        self.loaded = False
        self.load_error: str | None = None  # set when loading failed: the app exits with code 2
        # `make bench` drives the real app in a terminal: it asks for the wall time at which each
        # kind of event was first handled (and so drawn) through this file
        self._trace_path = os.environ.get("SWTUI_TRACE")
        self._traced: set[str] = set()
        self._theme_names: list[str] = []

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield ProgressBar(id="progress", show_eta=False)
        yield LayerSpikeChart(id="chart")
        with Horizontal(id="middle"):
            yield LayerDetail(id="detail")
            table = SuperWeightTable(id="sw-table")
            table.border_title = "super weights"
            yield table
        yield ComparisonPanel(id="compare")
        yield Footer()

    def on_mount(self) -> None:
        themes, problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self._theme_names = [t.name for t in themes] or ["textual-dark"]
        wanted = self.requested_theme or DEFAULT_THEME
        if wanted in self._theme_names:
            self.theme = wanted
        else:
            problems.append(f"theme {wanted!r} does not exist; available: {', '.join(self._theme_names)}")
            self.theme = DEFAULT_THEME if DEFAULT_THEME in self._theme_names else self._theme_names[0]
        for p in problems:
            self.notify(p, severity="warning")
        self.query_one(ComparisonPanel).set_prompt(self.worker.prompt)
        self.query_one("#chart").focus()
        self.worker.start()

    # -- the inference thread's events ---------------------------------------------------------
    def _emit(self, event: ev.Event) -> None:
        """Called from the inference thread: post_message is thread-safe."""
        self.post_message(EngineEvent(event))

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self.events_seen.append(event)
        if self._trace_path and type(event).__name__ not in self._traced:
            self._trace(type(event).__name__)
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _on_Progress(self, e: ev.Progress) -> None:
        # a bar only for measurable progress: an indeterminate one would animate (redraw) for
        # as long as the thread works, which costs CPU and bandwidth over SSH; the status bar
        # names the stage instead
        bar = self.query_one("#progress", ProgressBar)
        bar.display = e.fraction is not None and e.fraction < 1.0
        if bar.display:
            bar.update(total=100, progress=e.fraction * 100)
        self.query_one(StatusBar).busy = e.stage

    def _on_Busy(self, e: ev.Busy) -> None:
        self.busy_with = e.what if e.busy else ""
        self.query_one(StatusBar).busy = e.what if e.busy else ""
        if not e.busy:
            self.query_one("#progress", ProgressBar).display = False

    def _on_Loaded(self, e: ev.Loaded) -> None:
        self.loaded = True
        self.query_one(StatusBar).info = e.info
        self.sub_title = e.info.get("name", "")
        self.refresh_bindings()  # the footer dims what cannot apply yet

    def _on_ProbeDone(self, e: ev.ProbeDone) -> None:
        self.layers, self.tokens, self.threshold = e.layers, e.tokens, e.threshold
        chart = self.query_one(LayerSpikeChart)
        chart.threshold = e.threshold
        chart.layers = e.layers
        chart.border_subtitle = f"╌ spike threshold {e.threshold:.3g} · prompt {e.prompt!r}"
        self._show_layer(chart.selected)
        self.refresh_bindings()  # the footer dims what cannot apply yet

    def _on_DetectionDone(self, e: ev.DetectionDone) -> None:
        supers = [c for c in e.candidates if c.get("is_super") is not False]
        if e.candidates:
            first = (supers or e.candidates)[0]
            self.query_one(LayerSpikeChart).selected = first["layer"]
            self._show_layer(first["layer"])
        if supers:
            first = supers[0]
            self.notify(f"super weight: layer {first['layer']} [{first['row']}, {first['col']}]"
                        f" ({len(e.candidates)} candidates, {len(supers)} super)")
        else:
            self.notify(f"no super weight found: {len(e.candidates)} harmless candidates ({e.stop_reason})",
                        severity="warning")
        self.groups = e.groups
        for g in e.groups:
            if len(g["members"]) < 2 and g["verdict"] in ("super weight", "harmless"):
                continue  # a lone writer's verdict is its own, in the table
            ppl = ""
            if g.get("ppl_pruned_together") and g.get("ppl_base"):
                ppl = f", ppl ×{g['ppl_pruned_together'] / g['ppl_base']:.3g} pruned together"
            self.notify(f"channel {g['channel']}: {len(g['members'])} writers leave "
                        f"{100 * g['sa_remaining']:.0f}% of its activation{ppl} — {g['verdict']} (w: details)",
                        title="writers judged together", timeout=10)
        self.refresh_bindings()  # the footer dims what cannot apply yet

    def _on_StateChanged(self, e: ev.StateChanged) -> None:
        if e.super_weights and not self.sw_rows:  # first super weights known: show their layer
            chart = self.query_one(LayerSpikeChart)
            chart.selected = e.super_weights[0]["layer"]
            self._show_layer(chart.selected)
        self.sw_rows = e.super_weights
        self.query_one(SuperWeightTable).show(e.super_weights)
        status = self.query_one(StatusBar)
        status.edits, status.quant_mode = e.edit_count, e.quant_mode
        mode = "A/B in one batch" if e.batched_ab else "A/B in two passes (quantized weights)"
        self.query_one(ComparisonPanel).set_prompt(e.prompt, mode)
        self.refresh_bindings()  # the footer dims what cannot apply yet

    def _on_TokenStreamed(self, e: ev.TokenStreamed) -> None:
        self.query_one(f"#gen-{e.variant}", GenerationDiff).show(e.text)

    def _on_GenerationDone(self, e: ev.GenerationDone) -> None:
        for variant in ("base", "current"):
            if variant in e.texts:
                self.query_one(f"#gen-{variant}", GenerationDiff).show(e.texts[variant], e.diverge_at)

    def _on_StopwordsDone(self, e: ev.StopwordsDone) -> None:
        self.query_one(StopwordTable).show(e.report, e.perplexity)

    def _on_Failed(self, e: ev.Failed) -> None:
        if not self.loaded:  # nothing to inspect: the same contract as the headless commands
            self.load_error = f"swtui: {e.title.lower()}: {e.message}"
            self.worker.stop(timeout=0)
            self.exit(return_code=2)
            return
        if e.title == "Weight hash mismatch":
            self._ask_open_anyway(e.message)
            return
        self.notify(e.message, title=e.title, severity="error", timeout=8)

    def _ask_open_anyway(self, message: str) -> None:
        def answer(text: str | None) -> None:
            if text and text.strip().lower().startswith("y"):
                self.submit(ev.Call(lambda s: self.worker.apply_snapshot(s, force=True), refresh=True))
            else:
                self.exit(message="snapshot not opened: weight hash mismatch")

        self.push_screen(AskDialog(f"{message.split(';')[0]}. Open the snapshot anyway? (y/n)", "n",
                                   lambda t: None if t.strip().lower()[:1] in ("y", "n") else "answer y or n"),
                         answer)

    def _on_Notice(self, e: ev.Notice) -> None:
        self.notify(e.message, timeout=3)

    def _on_Exported(self, e: ev.Exported) -> None:
        self.notify(f"snapshot written to {e.path}", title="Exported")

    def _trace(self, name: str) -> None:
        import time

        self._traced.add(name)
        with open(self._trace_path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.6f} {name}\n")

    # -- helpers --------------------------------------------------------------------------------
    def _show_layer(self, layer: int) -> None:
        detail = self.query_one(LayerDetail)
        detail.tokens, detail.threshold = self.tokens, self.threshold
        detail.stats = self.layers[layer] if 0 <= layer < len(self.layers) else None

    def on_layer_spike_chart_layer_selected(self, message: LayerSpikeChart.LayerSelected) -> None:
        self._show_layer(message.layer)

    def _selected_key(self) -> tuple[int, int, int] | None:
        key = self.query_one(SuperWeightTable).selected_key()
        if key is None:
            self.notify("no super weight selected: detect (d) or name a spike (n) first", severity="warning")
        return key

    def submit(self, request: ev.Request) -> None:
        self.worker.submit(request)

    # -- actions --------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dimmed in the footer and the palette (and not run) while an action cannot apply."""
        spec = find(action)
        return True if spec is None or why_not(self, spec) is None else None

    def on_key(self, event) -> None:
        """A key whose action cannot apply now says why (Textual skips disabled bindings silently)."""
        for binding in self.BINDINGS:
            if event.key in binding.key.split(","):
                spec = find(binding.action.split("(")[0])
                reason = spec and why_not(self, spec)
                if reason and self.screen is self.screen_stack[0]:
                    self.notify(reason, severity="warning")
                return

    def action_detect(self) -> None:
        self.submit(ev.Detect())

    def action_regenerate(self) -> None:
        self.submit(ev.Refresh())

    def action_cancel(self) -> None:
        self.worker.cancel()

    def action_chart_move(self, step: int) -> None:
        self.query_one(LayerSpikeChart).action_move(step)

    def action_table_move(self, step: int) -> None:
        table = self.query_one(SuperWeightTable)
        table.action_cursor_down() if step > 0 else table.action_cursor_up()

    def action_name_spike(self) -> None:
        chart = self.query_one(LayerSpikeChart)
        if not self.layers:
            self.notify("no probe yet", severity="warning")
            return
        s = self.layers[chart.selected]

        def done(label: str | None) -> None:
            if label is not None:
                self.submit(ev.NameSpike(s["layer"], s["out_channel"], s["in_channel"], label.strip()))

        self.push_screen(AskDialog(f"Label for layer {s['layer']} [{s['out_channel']}, {s['in_channel']}] "
                                   "(enter to accept):", "", None), done)

    def action_toggle_prune(self) -> None:
        key = self._selected_key()
        if key is not None:
            row = next((r for r in self.sw_rows if (r["layer"], r["row"], r["col"]) == key), {})
            self.submit(ev.Prune(key, on=not row.get("pruned", False)))

    def action_scale(self) -> None:
        key = self._selected_key()
        if key is not None:
            self.push_screen(AskDialog(f"Scale W{list(key)} by:", "2", validate_factor),
                             lambda f: f is not None and self.submit(ev.Scale(key, float(f))))

    def action_restore(self) -> None:
        key = self._selected_key()
        if key is not None:
            self.submit(ev.Restore(key))

    def action_restore_all(self) -> None:
        self.submit(ev.RestoreAll())

    def action_toggle_sa(self) -> None:
        key = self._selected_key()
        if key is not None:
            self.submit(ev.ToggleSA(key))

    def action_toggle_zero_write(self) -> None:
        """Zero (or stop zeroing) the MLP write on the selected layer's output spike channel."""
        if not self.layers:
            self.notify("no probe yet", severity="warning")
            return
        st = self.layers[self.query_one(LayerSpikeChart).selected]
        self.submit(ev.ToggleWriteAblation(st["layer"], st["out_channel"]))

    def action_groups(self) -> None:
        from swtui.tui.screens.groups import GroupsScreen

        self.push_screen(GroupsScreen(self.groups))  # the registry gates it on self.groups

    def action_edit_prompt(self) -> None:
        self.push_screen(AskDialog("Prompt:", self.worker.prompt, validate_prompt),
                         lambda p: p is not None and self.submit(ev.SetPrompt(p)))

    def action_quantize(self) -> None:
        from swtui.tui.screens.quant import QuantDialog

        def done(choice) -> None:
            if choice is None:
                return
            how, label, cfg = choice
            if how == "form":
                self.action_quant_form()
            elif how == "variant":
                self.add_variant(label, cfg or None)
            else:
                self.submit(ev.Quantize(cfg or None))

        self.push_screen(QuantDialog(), done)

    def action_full_precision(self) -> None:
        self.submit(ev.Quantize(None))

    def action_export(self, out_dir: str = "snapshots") -> None:
        self.submit(ev.Export(out_dir, svg=self.export_screenshot()))

    def action_toggle_log(self) -> None:
        chart = self.query_one(LayerSpikeChart)
        chart.log_scale = not chart.log_scale

    def action_toggle_view(self) -> None:
        chart = self.query_one(LayerSpikeChart)
        chart.view = VIEWS[(VIEWS.index(chart.view) + 1) % len(VIEWS)]

    def action_next_theme(self) -> None:
        names = self._theme_names
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.worker.stop(timeout=0)  # signal only: the UI never waits on the model
        self.exit()
