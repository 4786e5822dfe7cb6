"""GroupsScreen: the detection's candidates judged together, one row per residual channel."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from swtui.fmt import compact

COLUMNS = ("channel", "massive", "writers (share of the peak; − cancels)", "activation", "left",
           "carriers pruned", "their controls", "+SA restored", "write zeroed, all layers", "control channel",
           "verdict")

EXPLAIN = (
    "Each row: a residual channel — a massive one (|h| ≥ 100× its layer's median in ≥ 3 layers; peak @layer, "
    "layers) with the MLPs writing it, signed (− cancels the activation), or the row of candidates. "
    "activation = max |residual| on the channel from its first layer on (probe prompt); left = what remains "
    "with its carriers pruned. Ratios: ppl against the unedited model on the same tokens, with 95% intervals; "
    "controls: random weights of matched magnitude, a random channel zeroed the same way. README: Detection."
)


def _ratio(r) -> str:
    return "—" if r is None else r.text()


class GroupsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,w", "dismiss", "close")]

    def __init__(self, groups: list):  # protocol.GroupRow
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(id="groups-box"):
            yield Static("channels and their writers, judged", classes="title")
            yield DataTable(id="groups-table", cursor_type="row", zebra_stripes=True)
            yield Static(EXPLAIN, id="groups-explain")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for g in self.groups:
            writers = ", ".join(f"{w.layer}[{w.row},{w.col}] {w.share:+.2f}" for w in g.writers) or \
                ", ".join(f"{m[0]}[{m[1]},{m[2]}]" for m in g.members)
            massive = (f"{compact(abs(g.peak))}, {g.persist_layers} layers" if g.massive and g.peak is not None
                       else "no")
            control = "—" if g.control_channel is None else f"{g.control_channel}: {_ratio(g.control)}"
            table.add_row(str(g.channel), massive, writers, compact(g.sa_before), f"{100 * g.sa_remaining:.0f}%",
                          _ratio(g.pruned_together), _ratio(g.together_control), _ratio(g.sa_restored), _ratio(g.write_zeroed),
                          control, g.verdict)
        table.focus()
