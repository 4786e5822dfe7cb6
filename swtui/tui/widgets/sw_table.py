"""SuperWeightTable: named super weights with value, z-score, state, impact and verdict."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from swtui.core.protocol import SuperWeightRow
from swtui.core.verdicts import Verdict
from swtui.fmt import fmt

COLUMNS = ("layer", "row", "col", "verdict", "pruned: ppl× [95%]", "state", "control", "role", "value", "prompts",
           "share", "z", "label")

#: how a verdict's emphasis (`Verdict.emphasis`) is drawn in the table
EMPHASIS = {"strong": "bold", "muted": "dim", "doubt": "italic"}


class SuperWeightTable(DataTable):
    """j/k or ↑/↓ move; the selected row is what p, s, r and a act on."""

    BINDINGS = [("j", "cursor_down", "down"), ("k", "cursor_up", "up")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)

    def show(self, rows: list[SuperWeightRow]) -> None:
        keep = self.selected_key()
        self.clear()
        for r in rows:
            impact = Text("measuring…", style="italic") if r.measuring else "—"
            if r.ratio is not None:
                impact = Text(r.ratio.text(), style="bold" if r.is_super else "dim")
            elif r.ppl_base and r.ppl_pruned:
                impact = Text(f"×{r.ppl_pruned / r.ppl_base:.3g}", style="bold" if r.is_super else "dim")
            control = Text(r.control.text(), style="dim") if r.control is not None else "—"
            state = Text(r.state, style="reverse" if r.state not in ("original", "measuring…") else "dim")
            prompts = "—" if r.prompts_total is None else f"{r.prompts_spiking}/{r.prompts_total}"
            share = "—" if r.share is None else f"{100 * r.share:.0f}%"
            v = Verdict.of(r.verdict)
            verdict = Text("—", style="dim") if v is None else Text(v.short, style=EMPHASIS[v.emphasis])
            layer = str(r.layer) if r.expert is None else f"{r.layer}·e{r.expert}"  # fused experts: its expert
            self.add_row(layer, str(r.row), str(r.col), verdict, impact, state, control, r.role or "—",
                         f"{r.value:.4g}", prompts, share, fmt(r.zscore, 1), r.label or "", key=_row_key(r.key))
        if keep is not None:
            for i, r in enumerate(rows):
                if r.key == keep:
                    self.move_cursor(row=i)

    def selected_key(self) -> tuple | None:
        """The (layer, row, col[, expert]) under the cursor (the rows are keyed by it), or None."""
        if self.row_count == 0 or self.cursor_row is None or not 0 <= self.cursor_row < self.row_count:
            return None
        key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        return tuple(int(x) for x in key.split(","))


def _row_key(key: tuple) -> str:
    return ",".join(map(str, key))
