"""MainScreen: the inspector's one screen of state.

What the UI knows lives here once, as reactives derived from the engine's events (the model, the
last probe, the super weight rows, the judged groups, what the engine is busy with, the named
quantization variants); the widgets only draw what they are given. The mission actions (detect,
name, prune, scale, …) are this screen's, gated by the action registry.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer

from swtui.core.engine import protocol as ev
from swtui.core.verdicts import Verdict
from swtui.tui.actions import NEEDS, bindings, find, why_not
from swtui.tui.comparing import Comparisons
from swtui.tui.screens.ask import AskDialog, validate_factor, validate_prompt
from swtui.tui.widgets.chart import VIEWS, LayerSpikeChart
from swtui.tui.widgets.compare import ComparisonPanel, GenerationDiff, StopwordTable
from swtui.tui.widgets.detail import LayerDetail
from swtui.tui.widgets.status import StatusBar
from swtui.tui.widgets.sw_table import SuperWeightTable


class MainScreen(Screen):
    BINDINGS = bindings("screen")  # one registry: swtui.tui.actions

    model: reactive[ev.ModelInfo | None] = reactive(None)
    layer_stats: reactive[list] = reactive(list, always_update=True)  # the last probe's protocol.LayerRows
    tokens: reactive[list] = reactive(list)
    threshold: reactive[float] = reactive(0.0)
    rows: reactive[list] = reactive(list, always_update=True)  # protocol.SuperWeightRow
    groups: reactive[list] = reactive(list)  # the last detection's writer groups
    busy: reactive[str] = reactive("starting")
    prompt: reactive[str] = reactive("")
    held_out: reactive[tuple] = reactive(tuple)  # the weights "keep super weights" holds out (the engine's set)

    def __init__(self, prompt: str, variants: list | None = None) -> None:
        super().__init__()
        self.set_reactive(MainScreen.prompt, prompt)
        # the comparison and the sweeps, with the named variants (a snapshot brings its own)
        self.comparisons = Comparisons(self, variants)
        self._handlers = {ev.Progress: self._on_progress, ev.Busy: self._on_busy, ev.Loaded: self._on_loaded,
                          ev.ProbeDone: self._on_probe, ev.DetectionDone: self._detection_done,
                          ev.StateChanged: self._on_state, ev.TokenStreamed: self._on_token,
                          ev.GenerationDone: self._on_generation, ev.StopwordsDone: self._on_stopwords,
                          ev.Measured: self._on_measured, ev.Notice: self._on_notice,
                          ev.Exported: self._on_exported, ev.Failed: self._on_failed,
                          **self.comparisons.handlers}
        self._gates: tuple = ()  # what the action registry's needs depend on, when last drawn
        self._notice_timer = None

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def variants(self) -> list:
        """The named quantization variants (`quant.config.Variant`) a comparison measures."""
        return self.comparisons.variants

    @property
    def source(self):
        """How the model's source stored its weights (`SourceQuant`), float before a load."""
        from swtui.core.model.source_quant import FLOAT

        return self.model.source_quant if self.model is not None else FLOAT

    @property
    def quant_bits(self) -> int:
        """RTN bits of the presets, the paper's pair and the block sweep: W4, or below a Q4 source."""
        from swtui.core.defaults import PAPER_BITS

        return self.source.default_bits(PAPER_BITS)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield LayerSpikeChart(id="chart")
        with Horizontal(id="middle"):
            yield LayerDetail(id="detail")
            table = SuperWeightTable(id="sw-table")
            table.border_title = "super weights"
            yield table
        yield ComparisonPanel(id="compare")
        yield Footer()

    class Ready(Message):
        """Every widget is mounted: the engine's events can be shown from now on."""

    def on_mount(self) -> None:
        self.query_one(ComparisonPanel).set_prompt(self.prompt)
        self.query_one(LayerSpikeChart).focus()
        self.post_message(self.Ready())

    # -- state -> widgets -------------------------------------------------------------------------
    def watch_model(self, model: ev.ModelInfo | None) -> None:
        self.query_one(StatusBar).info = model
        self.app.sub_title = model.name if model else ""

    def watch_busy(self, busy: str) -> None:
        status = self.query_one(StatusBar)
        status.busy = busy
        if not busy:
            status.fraction = None

    def watch_layer_stats(self, layers: list) -> None:
        chart = self.query_one(LayerSpikeChart)
        chart.threshold = self.threshold
        chart.layers = layers
        self._show_layer(chart.selected)

    def watch_rows(self, old: list, rows: list) -> None:
        if rows and not old:  # the first super weights known: show their layer
            self._select_layer(rows[0].layer)
        self.query_one(SuperWeightTable).show(rows)
        self._show_candidate()

    def _show_candidate(self) -> None:
        """The detail pane shows the table's selected candidate's evidence."""
        self.query_one(LayerDetail).candidate = self.selected_row()

    def on_data_table_row_highlighted(self, message) -> None:
        if isinstance(message.data_table, SuperWeightTable):
            self._show_candidate()

    def on_resize(self) -> None:
        # a tall terminal gives the middle row room for the candidate's evidence and the layer's
        self.set_class(self.size.height >= 32, "-tall")  # 1 + 9 + 14 + 6 + 1 rows: the chart and the comparison keep their least
        # a narrow terminal gives the table the detail pane's spare columns: the pane's lines are
        # written for its width, the table's ratios keep their compact interval at 80 columns
        self.set_class(self.size.width < 90, "-narrow")

    def _select_layer(self, layer: int) -> None:
        chart = self.query_one(LayerSpikeChart)
        chart.selected = layer
        self._show_layer(layer)

    def _show_layer(self, layer: int) -> None:
        detail = self.query_one(LayerDetail)
        detail.tokens, detail.threshold = self.tokens, self.threshold
        detail.stats = self.layer_stats[layer] if 0 <= layer < len(self.layer_stats) else None

    def on_layer_spike_chart_layer_selected(self, message: LayerSpikeChart.LayerSelected) -> None:
        self._show_layer(message.layer)

    def show_notice(self, text: str | None, severity: str = "information", timeout: float = 5.0) -> None:
        """The status line's notice (the app's notifications), gone after `timeout` seconds."""
        if not self.is_mounted:
            return
        status = self.query_one(StatusBar)
        status.notice = None if text is None else (text, severity)
        if self._notice_timer is not None:
            self._notice_timer.stop()
            self._notice_timer = None
        if text is not None:
            self._notice_timer = self.set_timer(timeout, lambda: self.show_notice(None))

    # -- events -> state ----------------------------------------------------------------------------
    def handle(self, event: ev.Event) -> None:
        """Apply one engine event (called by the app, on the UI thread) through its handler."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
        gates = (self.loaded, bool(self.layer_stats), bool(self.rows), bool(self.groups))
        if gates != self._gates:  # the footer dims what cannot apply now (redrawing it costs)
            self._gates = gates
            self.refresh_bindings()

    def _on_progress(self, e: ev.Progress) -> None:
        # the status line's percentage and gauge, only for measurable progress (nothing animates
        # while the engine works: redraws cost CPU and bandwidth over SSH)
        status = self.query_one(StatusBar)
        status.busy = e.stage
        status.fraction = e.fraction if e.fraction is not None and e.fraction < 1.0 else None

    def _on_busy(self, e: ev.Busy) -> None:
        self.busy = e.what if e.busy else ""

    def _on_loaded(self, e: ev.Loaded) -> None:
        self.model = e.info

    def _on_probe(self, e: ev.ProbeDone) -> None:
        self.tokens, self.threshold = e.tokens, e.threshold
        self.query_one(LayerSpikeChart).border_subtitle = f"╌ spike threshold {e.threshold:.3g} · prompt {e.prompt!r}"
        self.layer_stats = e.layers

    def _on_state(self, e: ev.StateChanged) -> None:
        status = self.query_one(StatusBar)
        status.edits, status.quant_mode = e.edit_count, e.quant_mode
        self.prompt = e.prompt
        mode = "A/B in one batch" if e.batched_ab else "A/B in two passes (quantized weights)"
        self.query_one(ComparisonPanel).set_prompt(e.prompt, mode)
        self.rows = list(e.super_weights)
        self.held_out = e.held_out

    def _on_token(self, e: ev.TokenStreamed) -> None:
        self.query_one(f"#gen-{e.variant}", GenerationDiff).show(e.text)

    def _on_generation(self, e: ev.GenerationDone) -> None:
        for variant in ("base", "current"):
            if variant in e.texts:
                self.query_one(f"#gen-{variant}", GenerationDiff).show(e.texts[variant], e.diverge_at)

    def _on_stopwords(self, e: ev.StopwordsDone) -> None:
        self.query_one(StopwordTable).show(e.report)

    def _on_measured(self, e: ev.Measured) -> None:
        self.query_one(StopwordTable).show_perplexity({v: m.perplexity for v, m in e.metrics.items()})

    def _on_notice(self, e: ev.Notice) -> None:
        self.notify(e.message, timeout=3)

    def _on_exported(self, e: ev.Exported) -> None:
        self.notify(f"snapshot written to {e.path}", title="Exported")

    def _on_failed(self, e: ev.Failed) -> None:
        self.notify(e.message, title=e.title, severity="error", timeout=8)

    def _detection_done(self, e: ev.DetectionDone) -> None:
        if e.candidates:
            self._select_layer((e.supers or e.candidates)[0][0])
        basis = (f" — 95% intervals vs ×{e.impact_threshold:g} on {e.eval_tokens} tokens"
                 if e.impact_threshold is not None and e.eval_tokens else "")
        if e.supers:
            layer, row, col = e.supers[0][:3]
            expert = f" of expert {e.supers[0][3]}" if len(e.supers[0]) > 3 else ""
            self.notify(f"super weight: layer {layer} [{row}, {col}]{expert}"
                        f" ({len(e.candidates)} candidates, {len(e.supers)} super){basis}")
        else:
            self.notify(f"no super weight found: {len(e.candidates)} candidates ({e.stop_reason}){basis}",
                        severity="warning")
        self.groups = e.groups
        for g in e.groups:
            if not g.massive and len(g.members) < 2 and g.verdict in (Verdict.SUPER, Verdict.BELOW):
                continue  # a lone writer's verdict is its own, in the table
            parts = [f"{len(g.writers) or len(g.members)} writers"]
            if g.pruned_together is not None:
                parts.append(f"carriers pruned {g.pruned_together.text()}")
            if g.positions_zeroed is not None:
                control = "—" if g.control is None else g.control.text()
                parts.append(f"zeroed where massive {g.positions_zeroed.text()} (worst control {control})")
            kind = "massive channel" if g.massive else "channel"
            self.notify(f"{kind} {g.channel}: {', '.join(parts)} — {g.verdict} (w: details)",
                        title="channels judged", timeout=10)

    # -- actions ------------------------------------------------------------------------------------
    def submit(self, request: ev.Request) -> None:
        self.app.engine.submit(request)

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
                if reason:
                    self.notify(reason, severity="warning")
                return

    def selected_row(self) -> ev.SuperWeightRow | None:
        key = self.query_one(SuperWeightTable).selected_key()
        return next((r for r in self.rows if r.key == key), None)

    def _selected_or_why(self) -> ev.SuperWeightRow | None:
        """The selected row; without one, says what to do first (the registry's reason)."""
        row = self.selected_row()
        if row is None:
            self.notify(NEEDS["selection"], severity="warning")
        return row

    def selected_key(self) -> tuple[int, int, int] | None:
        row = self._selected_or_why()
        return None if row is None else row.key

    def _selected_layer(self) -> ev.LayerRow | None:
        if not self.layer_stats:
            self.notify("no probe yet", severity="warning")
            return None
        return self.layer_stats[self.query_one(LayerSpikeChart).selected]

    def action_detect(self) -> None:
        self.submit(ev.Detect())

    def action_regenerate(self) -> None:
        self.submit(ev.Refresh())

    def action_chart_move(self, step: int) -> None:
        self.query_one(LayerSpikeChart).action_move(step)

    def action_table_move(self, step: int) -> None:
        table = self.query_one(SuperWeightTable)
        table.action_cursor_down() if step > 0 else table.action_cursor_up()

    def action_name_spike(self) -> None:
        s = self._selected_layer()
        if s is None:
            return

        # fused experts: the spike's expert and its attributed col (the largest input may be another expert's)
        col = s.in_channel if s.expert is None or s.attr_col is None else s.attr_col
        where = "" if s.expert is None else f" of expert {s.expert}"

        def done(label: str | None) -> None:
            if label is not None:
                self.submit(ev.NameSpike(s.layer, s.out_channel, col, label.strip(), expert=s.expert))

        self.app.push_screen(AskDialog(f"Label for layer {s.layer} [{s.out_channel}, {col}]{where} "
                                       "(enter to accept):", "", None), done)

    def action_experts(self) -> None:
        """A mixture of experts: the selected layer's routed experts; enter names one's spike."""
        from swtui.tui.screens.experts import ExpertsScreen

        st = self._selected_layer()
        if st is None:
            return

        def done(key: tuple | None) -> None:
            if key is not None:
                layer, row, col, expert = key
                self.submit(ev.NameSpike(layer, row, col, "", expert=expert))

        self.app.push_screen(ExpertsScreen(st), done)

    def action_toggle_prune(self) -> None:
        row = self._selected_or_why()
        if row is not None:
            self.submit(ev.Prune(row.key, on=not row.pruned))

    def action_scale(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.app.push_screen(AskDialog(f"Scale W{list(key)} by:", "2", validate_factor),
                                 lambda f: f is not None and self.submit(ev.Scale(key, float(f))))

    def action_restore(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.submit(ev.Restore(key))

    def action_restore_all(self) -> None:
        self.submit(ev.RestoreAll())

    def action_prune_findings(self) -> None:
        self.submit(ev.PruneFindings())

    def action_toggle_sa(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.submit(ev.ToggleSA(key))

    def action_toggle_zero_write(self) -> None:
        """Zero (or stop zeroing) the MLP write on the selected layer's output spike channel."""
        st = self._selected_layer()
        if st is not None:
            self.submit(ev.ToggleWriteAblation(st.layer, st.out_channel))

    def action_groups(self) -> None:
        from swtui.tui.screens.groups import GroupsScreen

        self.app.push_screen(GroupsScreen(self.groups))  # the registry gates it on self.groups

    def action_edit_prompt(self) -> None:
        self.app.push_screen(AskDialog("Prompt:", self.prompt, validate_prompt),
                             lambda p: p is not None and self.submit(ev.SetPrompt(p)))

    def action_quantize(self) -> None:
        from swtui.tui.screens.quant import QuantDialog

        def done(choice) -> None:
            if choice is None:
                return
            how, label, cfg = choice
            if how == "form":
                self.comparisons.open_form()
            elif how == "variant":
                self.comparisons.add_variant(label, cfg)
            else:
                self.submit(ev.Quantize(cfg))

        self.app.push_screen(QuantDialog(self.quant_bits), done)

    def action_quant_form(self) -> None:
        self.comparisons.open_form()

    def action_compare(self) -> None:
        self.comparisons.compare()

    def action_scale_sweep(self) -> None:
        self.comparisons.scale_sweep()

    def action_quant_sweep(self) -> None:
        self.comparisons.quant_sweep()

    def action_full_precision(self) -> None:
        self.submit(ev.Quantize(None))

    def action_export(self, out_dir: str = "snapshots") -> None:
        self.submit(ev.Export(out_dir, svg=self.app.export_screenshot()))

    def action_toggle_log(self) -> None:
        chart = self.query_one(LayerSpikeChart)
        chart.log_scale = not chart.log_scale

    def action_toggle_view(self) -> None:
        chart = self.query_one(LayerSpikeChart)
        chart.view = VIEWS[(VIEWS.index(chart.view) + 1) % len(VIEWS)]

