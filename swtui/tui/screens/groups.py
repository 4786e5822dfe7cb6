"""GroupsScreen: the detection's candidates judged together, one row per residual channel."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from swtui.fmt import compact

COLUMNS = ("channel", "writers", "activation", "left", "pruned", "+SA restored", "write zeroed", "verdict")

EXPLAIN = (
    "Each row: the candidates writing one residual channel. activation = max |residual| on the channel from "
    "the first writer on (probe prompt); left = what remains with every writer pruned; ppl ratios against "
    "the unedited model: writers pruned together, with their super activations restored, and the MLP write on "
    "the channel zeroed (measured where pruning does not hurt). README: Detection."
)


def _ratio(value, base) -> str:
    return "—" if value is None or not base else f"×{value / base:.3g}"


class GroupsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,w", "dismiss", "close")]

    def __init__(self, groups: list):  # protocol.GroupRow
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(id="groups-box"):
            yield Static("writers judged together", classes="title")
            yield DataTable(id="groups-table", cursor_type="row", zebra_stripes=True)
            yield Static(EXPLAIN, id="groups-explain")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for g in self.groups:
            writers = ", ".join(f"{m[0]}[{m[1]},{m[2]}]" for m in g.members)
            base = g.ppl_base
            table.add_row(str(g.channel), writers, compact(g.sa_before), f"{100 * g.sa_remaining:.0f}%",
                          _ratio(g.ppl_pruned_together, base), _ratio(g.ppl_pruned_sa_restored, base),
                          _ratio(g.ppl_write_zeroed, base), g.verdict)
        table.focus()
