"""SuperWeightTable: named super weights with value, z-score, state, impact and verdict."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from swtui.fmt import fmt

COLUMNS = ("layer", "row", "col", "verdict", "state", "impact", "value", "prompts", "share", "z", "label")

#: the verdicts of `swtui.core.groups`, short enough for a column
SHORT_VERDICT = {"super weight": "super weight", "super weight group": "SW group",
                 "massive activation without a super weight": "activation only", "harmless": "harmless"}


class SuperWeightTable(DataTable):
    """j/k or ↑/↓ move; the selected row is what p, s, r and a act on."""

    BINDINGS = [("j", "cursor_down", "down"), ("k", "cursor_up", "up")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)
        self.rows_data: list[dict] = []

    def show(self, rows: list[dict]) -> None:
        keep = self.selected_key()
        self.rows_data = rows
        self.clear()
        for r in rows:
            impact = Text("measuring…", style="italic") if r.get("measuring") else "—"
            if r.get("ppl_base") and r.get("ppl_pruned"):
                ratio = r["ppl_pruned"] / r["ppl_base"]
                impact = Text(f"ppl×{ratio:.1f}", style="bold" if r.get("is_super") else "dim")
            state = Text(r["state"], style="reverse" if r["state"] not in ("original", "measuring…") else "dim")
            z = fmt(r.get("zscore"), 1)
            prompts = "—" if r.get("prompts_total") is None else f"{r['prompts_spiking']}/{r['prompts_total']}"
            share = "—" if r.get("share") is None else f"{100 * r['share']:.0f}%"
            verdict = r.get("verdict")
            verdict = Text(SHORT_VERDICT.get(verdict, verdict or "—"),
                           style="bold" if verdict and verdict != "harmless" else "dim")
            self.add_row(str(r["layer"]), str(r["row"]), str(r["col"]), verdict, state, impact, f"{r['value']:.4g}",
                         prompts, share, z, r.get("label") or "", key=f"{r['layer']},{r['row']},{r['col']}")
        if keep is not None:
            for i, r in enumerate(rows):
                if (r["layer"], r["row"], r["col"]) == keep:
                    self.move_cursor(row=i)

    def selected_key(self) -> tuple[int, int, int] | None:
        rows = getattr(self, "rows_data", [])
        if not rows or self.cursor_row is None or not 0 <= self.cursor_row < len(rows):
            return None
        r = rows[self.cursor_row]
        return (r["layer"], r["row"], r["col"])

    def selected_row(self) -> dict | None:
        key = self.selected_key()
        return next((r for r in self.rows_data if (r["layer"], r["row"], r["col"]) == key), None)
