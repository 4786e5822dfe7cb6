"""SweepScreen: a scale sweep (perplexity as a super weight is scaled) or a quantization sweep
(naive vs super-outlier-aware RTN by block size), drawn as rows arrive; cancellable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from swtui.tui.messages import CancelWork, ExportSnapshot
from swtui.tui.widgets.sweep_chart import SweepChart


class SweepScreen(Screen[None]):
    BINDINGS = [Binding("escape", "back", "back (cancels a running sweep)"),
                Binding("x", "export", "export (with this screen)")]

    def action_export(self) -> None:
        """A snapshot whose screen.svg is this sweep (the snapshot holds its rows too)."""
        self.post_message(ExportSnapshot())

    def __init__(self, kind: str, title: str):
        super().__init__()
        self.kind = kind
        self.heading = title
        self.rows: list[dict] = []
        self.meta: dict = {}
        self.state = "running…"

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-title")
        with VerticalScroll():
            yield SweepChart(id="sweep-chart")
            yield DataTable(id="sweep-table", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        chart = self.query_one(SweepChart)
        chart.kind = self.kind
        table = self.query_one(DataTable)
        if self.kind == "scale":
            table.add_columns("factor", "perplexity", "vs ×1 [95% interval]", "stopword mass")
        else:
            table.add_columns("block", "naive", "keep SW", "clip", "clip + keep SW", "naive / SW-aware")
        self._title()

    def _title(self) -> None:
        self.query_one("#sweep-title", Static).update(
            f"{self.heading} — {self.state} ({len(self.rows)} rows) · x: export into snapshots · esc: back")

    def add_row(self, row: dict) -> None:
        self.rows.append(row)
        self.query_one(SweepChart).rows = list(self.rows)
        table = self.query_one(DataTable)
        if self.kind == "scale":
            ci = row.get("ratio_ci95")
            vs = f"×{row['ratio']:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "—"
            table.add_row(f"×{row['factor']:g}", f"{row['perplexity']:,.3f}", vs, f"{row['stopword_mass']:.4f}")
        else:
            table.add_row(str(row["block"]), *(f"{row[k]:,.2f}" for k in ("naive", "keep_sw", "clip", "sw_aware")),
                          f"{row['naive'] / row['sw_aware']:.2f}×")
        self._title()

    def finished(self, rows: list[dict], meta: dict, cancelled: bool) -> None:
        self.meta = meta
        self.state = "cancelled" if cancelled else "done"
        self._title()

    def action_back(self) -> None:
        if self.state == "running…":
            self.post_message(CancelWork())
        self.dismiss()
