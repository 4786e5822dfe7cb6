"""ExpertsScreen: the routed experts of the selected layer (a mixture of experts), to name one's spike."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from swtui.fmt import compact

COLUMNS = ("expert", "tokens routed", "max |out|", "out ch", "token", "max |in|", "col (attribution)")

EXPLAIN = ("Each routed expert of this layer on the probe prompt: its down projection's largest |output| "
           "(channel, token), the tokens the router sent to it, its largest |input|, and the input channel "
           "whose term writes most of its output spike. The chart shows the max over the experts. "
           "enter names the highlighted expert's spike a super weight (layer, row, col, expert); the "
           "super-experts rule and its verdicts are in scan --json (README: Mixtures of experts).")


class ExpertsScreen(ModalScreen[tuple | None]):
    """Dismisses with (layer, row, col, expert) of the highlighted expert's spike, or None."""

    BINDINGS = [Binding("escape,q,E", "dismiss", "close"), Binding("enter", "pick", "name spike")]

    def __init__(self, layer):  # protocol.LayerRow
        super().__init__()
        self.stats = layer
        rows = layer.experts or []
        self.rows = sorted(rows, key=lambda r: -r[2])  # largest output first

    def compose(self) -> ComposeResult:
        with Vertical(id="experts-box"):
            title = f"layer {self.stats.layer}: {len(self.rows)} routed experts" if self.stats.experts is not None \
                else f"layer {self.stats.layer} has a dense down projection: no experts"
            yield Static(title, classes="title")
            yield DataTable(id="experts-table", cursor_type="row", zebra_stripes=True)
            yield Static(EXPLAIN, id="experts-explain")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for r in self.rows:
            col = r[6] if len(r) > 6 and r[6] is not None else "—"
            style = "bold" if r[0] == self.stats.expert else ""  # the expert whose spike the chart shows
            cells = (str(r[0]), str(r[1]), compact(r[2]), str(r[3]), str(r[4]), compact(r[5]), str(col))
            table.add_row(*(Text(c, style=style) for c in cells))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_pick()

    def action_pick(self) -> None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            self.dismiss(None)
            return
        r = self.rows[table.cursor_row]
        if len(r) <= 6 or r[6] is None:
            self.app.notify("this expert's weights cannot be read: no attribution", severity="warning")
            return
        self.dismiss((self.stats.layer, int(r[3]), int(r[6]), int(r[0])))
