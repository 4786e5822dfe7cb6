"""GroupsScreen: the detection's candidates judged together, one row per residual channel.

The table shows what fits its width (`plan`: the channel, its verdict and the ratios it rests on
first, in `ORDER`; the ratios' form narrows before the least columns are given up), and the
selected channel's every figure is written out below it, whole, at any size (`group_lines`).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from swtui.core.verdicts import Verdict
from swtui.fmt import compact
from swtui.tui.evidence_text import COMPACT, FULL, TIGHT, ratio_text

#: every figure of a channel, in the order the detection reports them (`cells` writes them so)
COLUMNS = ("channel", "massive", "writers (share of the peak; − cancels)", "activation", "left",
           "carriers pruned", "their controls", "+SA restored", "zeroed where massive", "control channel",
           "zeroed at every token", "its control", "verdict")
#: the table's columns, most needed first: a narrow table keeps the first ones (at least `CORE`)
ORDER = ("channel", "verdict", "carriers pruned", "their controls", "zeroed where massive", "control channel",
         "zeroed at every token", "its control", "+SA restored", "left", "activation", "massive",
         "writers (share of the peak; − cancels)")
CORE = 3
#: the columns written as ratios
RATIOS = ("carriers pruned", "their controls", "+SA restored", "zeroed where massive", "zeroed at every token",
          "its control")

EXPLAIN = (
    "Each row: a residual channel — a massive one (|h| ≥ 100× its layer's median in ≥ 3 layers; peak @layer, "
    "layers) with the MLPs writing it, signed (− cancels the activation), or the row of candidates. "
    "activation = max |residual| on the channel from its first layer on (probe prompt); left = what remains "
    "with its carriers pruned (— where a carrier alone is a super weight: not measured). Ratios: ppl against "
    "the unedited model on the same windows, with the plan's intervals (95% jointly); controls: the worst of 5 "
    "(weights nearest in |x·w|, taken together; channels nearest in MLP write energy, zeroed the same way). "
    "The channel zeroed where it is massive decides; at every token it is descriptive. docs/method.md."
)


def _writers(g) -> str:
    return ", ".join(f"{w.layer}[{w.row},{w.col}] {w.share:+.2f}" for w in g.writers) or \
        ", ".join(f"{m[0]}[{m[1]},{m[2]}]" for m in g.members)


def cells(g, form: int = FULL, short: bool = False) -> dict[str, str]:
    """Every column's text for one channel, its ratios in `form` (`evidence_text`)."""
    massive = f"{compact(abs(g.peak))}, {g.persist_layers} layers" if g.massive and g.peak is not None else "no"
    control = "—" if g.control_channel is None else f"{g.control_channel}: {ratio_text(g.control, form=form)}"
    v = Verdict.of(g.verdict)
    return {"channel": str(g.channel), "massive": massive, COLUMNS[2]: _writers(g), "activation": compact(g.sa_before),
            "left": f"{100 * g.sa_remaining:.0f}%", "carriers pruned": ratio_text(g.pruned_together, form=form),
            "their controls": ratio_text(g.together_control, form=form),
            "+SA restored": ratio_text(g.sa_restored, form=form),
            "zeroed where massive": ratio_text(g.positions_zeroed, form=form), "control channel": control,
            "zeroed at every token": ratio_text(g.write_zeroed, form=form),
            "its control": ratio_text(g.write_control, form=form),
            "verdict": (v.short if short else str(v)) if v is not None else "—"}


def plan(groups: list, width: int, padding: int = 1) -> tuple[tuple[str, ...], int, bool]:
    """(columns, ratio form, short verdicts): the most columns, then the widest form, that fit
    (in `ORDER`, the columns without a figure in any row last)."""
    def needed(columns, form, short) -> int:
        rows = [cells(g, form, short) for g in groups]
        return sum(max([cell_len(c)] + [cell_len(r[c]) for r in rows]) + 2 * padding for c in columns)

    # a column with no figure in any row (not measured: e.g. the carriers pruned together where a
    # carrier alone is a super weight) gives way before every column that has one
    drawn = [cells(g) for g in groups]
    order = tuple(sorted(ORDER, key=lambda c: c != "channel" and c != "verdict" and all(r[c] == "—" for r in drawn)))
    options = [(order[:n], FULL, False) for n in range(len(order), CORE, -1)]
    options += [(order[:CORE + 2], TIGHT, True), (order[:CORE + 1], TIGHT, True), (order[:CORE], TIGHT, True),
                (order[:CORE], COMPACT, True)]
    for columns, form, short in options:
        if needed(columns, form, short) <= width:
            return columns, form, short
    return options[-1]


def group_lines(g) -> list[str]:
    """The channel's every figure, one per line, in full."""
    c = cells(g)
    lines = [f"channel {g.channel} — {c['verdict']}",
             f"massive {c['massive']} · activation {c['activation']} · left {c['left']} with its carriers pruned",
             f"writers {c[COLUMNS[2]]}"]
    for name in RATIOS[:4]:
        lines.append(f"{name:<26}{c[name]}")
    lines.append(f"{'control channel':<26}{c['control channel']}")
    for name in RATIOS[4:]:
        lines.append(f"{name:<26}{c[name]}")
    return lines


class GroupsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,w", "dismiss", "close")]

    def __init__(self, groups: list):  # protocol.GroupRow
        super().__init__()
        self.groups = groups
        self.cells = [tuple(cells(g)[c] for c in COLUMNS) for g in groups]  # every figure, in COLUMNS' order
        self._plan = None

    def compose(self) -> ComposeResult:
        with Vertical(id="groups-box"):
            yield Static("channels and their writers, judged", classes="title")
            yield DataTable(id="groups-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="groups-body"):
                yield Static(id="groups-detail")
                yield Static(EXPLAIN, id="groups-explain")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._fill()

    def on_resize(self) -> None:
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        width = table.size.width or max(10, int(self.size.width * 0.9) - 4)
        chosen = plan(self.groups, width, table.cell_padding)
        if chosen == self._plan:
            return
        self._plan = columns, form, short = chosen
        keep = table.cursor_row
        table.clear(columns=True)
        for c in columns:
            table.add_column(c, key=c)
        for g in self.groups:
            row = cells(g, form, short)
            table.add_row(*(row[c] for c in columns))
        if keep:
            table.move_cursor(row=keep)
        self._detail()

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        table = self.query_one(DataTable)
        i = table.cursor_row
        if not self.groups or i is None or not 0 <= i < len(self.groups):
            return
        lines = group_lines(self.groups[i])
        t = Text(lines[0], style="bold")
        for line in lines[1:]:
            t.append("\n" + line)
        self.query_one("#groups-detail", Static).update(t)
