"""SweepScreen: a scale sweep (perplexity as a super weight is scaled) or a quantization sweep
(naive vs super-outlier-aware RTN by block size), drawn as rows arrive; cancellable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from swtui.tui.messages import CancelWork, ExportSnapshot
from swtui.tui.widgets.notice import NoticeLine
from swtui.tui.widgets.sweep_chart import SweepChart


class SweepScreen(Screen[None]):
    BINDINGS = [Binding("escape", "back", "back (cancels a running sweep)"),
                Binding("x", "export", "export (with this screen)")]

    def action_export(self) -> None:
        """A snapshot whose screen.svg is this sweep (the snapshot holds its rows too)."""
        self.post_message(ExportSnapshot())

    def __init__(self, kind: str, title: str, warning: str | None = None):
        super().__init__()
        self.kind = kind
        self.heading = title
        self.warning = warning  # why the source's own grid confounds this sweep, said above its numbers
        self.rows: list = []  # protocol.ScaleRow or QuantRow
        self.meta = None
        self.state = "running…"

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-title")
        yield NoticeLine()
        if self.warning:
            yield Static(f"⚠ {self.warning}", id="sweep-warning")
        with VerticalScroll():
            yield SweepChart(id="sweep-chart")
            yield DataTable(id="sweep-table", zebra_stripes=True)
        yield Footer()

    def show_notice(self, text: str | None, severity: str = "information", timeout: float = 5.0) -> None:
        """The app's notifications, on this screen's notice line (no toast over its figures)."""
        self.query_one(NoticeLine).show(text, severity, timeout)

    def on_mount(self) -> None:
        chart = self.query_one(SweepChart)
        chart.kind = self.kind
        table = self.query_one(DataTable)
        if self.kind == "scale":
            table.add_columns("factor", "perplexity", "vs ×1 [95% interval]", "stopword mass")
        else:
            table.add_columns("block", "naive", "keep SW", "clip", "clip + keep SW", "SW-aware / naive [95%]",
                              "source grid")
        self._title()

    def _title(self) -> None:
        self.query_one("#sweep-title", Static).update(
            f"{self.heading} — {self.state} ({len(self.rows)} rows) · x: export into snapshots · esc: back")

    def add_row(self, row) -> None:
        self.rows.append(row)
        self.query_one(SweepChart).rows = list(self.rows)
        table = self.query_one(DataTable)
        if self.kind == "scale":
            table.add_row(f"×{row.factor:g}", f"{row.perplexity:,.3f}", row.ratio.text(), f"{row.stopword_mass:.4f}")
        else:
            grid = "—" if not row.confound else "reproduced" if "reproduces" in row.confound else "confounded"
            table.add_row(row.label, *(f"{v:,.2f}" for v in (row.naive, row.keep_sw, row.clip, row.sw_aware)),
                          row.sw_aware_vs_naive.text(), grid)
        self._title()

    def finished(self, rows: tuple, meta, cancelled: bool) -> None:
        self.meta = meta
        self.state = "cancelled" if cancelled else "done"
        self._title()

    def action_back(self) -> None:
        if self.state == "running…":
            self.post_message(CancelWork())
        self.dismiss()
