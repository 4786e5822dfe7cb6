"""SuperWeightTable: named super weights with value, z-score, state, impact and verdict.

The table is laid out for the columns it has, never cut by them (`plans`): from the widest plan,
it gives up, in this order, until every cell fits:

1. label, z, share, prompts, value, role (in that order; the detail pane shows the candidate)
2. the state column: it becomes a mark before the weight (P pruned, S scaled, + SA restored,
   ~ measuring; the detail pane says it in words)
3. layer, row and col merged into one weight column, 11[507,1229]
4. the ratios' tight form ×4.26 [3.61–5.03]
5. the control column (the detail pane shows the control(s), their spread and the tokens)
6. the ratio's compact form 4.3×[3.6–5.0], then its value alone ×4.3

Ratios are written by `evidence_text.ratio_text`, in one of its forms: a number is never cut.
While detection measures a candidate's controls, its verdict column shows the verdict its
treatment points to with a "?" ("super weight?"): provisional, until the controls are in.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from swtui.core.evidence.stats import Ratio
from swtui.core.engine.protocol import SuperWeightRow
from swtui.core.verdicts import Verdict
from swtui.fmt import fmt
from swtui.tui.evidence_text import COMPACT, FULL, TIGHT, VALUE, ratio_text

#: every column the table can show, in its order (`cell_text` reads any of them, shown or not)
COLUMNS = ("layer", "row", "col", "verdict", "pruned: ppl× [95%]", "state", "control", "role", "value", "prompts",
           "share", "z", "label")
RATIO, WEIGHT = "pruned: ppl× [95%]", "weight"
#: the columns whose cells are numbers (tests/tui check that none is ever cut)
NUMERIC = ("layer", "row", "col", RATIO, "control", "value", "prompts", "share", "z", WEIGHT)
#: step 1 of the module's order: the columns given up first, first to last
DROPPED_FIRST = ("label", "z", "share", "prompts", "value", "role")
#: a ratio column's header for each form (as wide as the form, or narrower)
RATIO_HEADERS = {FULL: RATIO, TIGHT: "pruned: ppl× [95%]", COMPACT: "ppl× [95%]", VALUE: "ppl×"}

#: how a verdict's emphasis (`Verdict.emphasis`) is drawn in the table
EMPHASIS = {"strong": "bold", "muted": "dim", "doubt": "italic"}


@dataclass(frozen=True)
class Plan:
    """Which columns the table shows and how it writes its ratios."""
    columns: tuple[str, ...]
    form: int = FULL
    mark: bool = False  # the state as a mark before the weight (no state column)
    merged: bool = False  # layer, row, col as one weight column


def plans() -> list[Plan]:
    """Every layout, from the widest to the narrowest (the module's order)."""
    shown = list(COLUMNS)
    out = [Plan(tuple(shown))]
    for name in DROPPED_FIRST:
        shown.remove(name)
        out.append(Plan(tuple(shown)))
    shown.remove("state")
    out.append(Plan(tuple(shown), mark=True))
    merged = [WEIGHT] + [c for c in shown if c not in ("layer", "row", "col")]
    out.append(Plan(tuple(merged), mark=True, merged=True))
    out.append(Plan(tuple(merged), TIGHT, mark=True, merged=True))
    merged.remove("control")
    for form in (TIGHT, COMPACT, VALUE):
        out.append(Plan(tuple(merged), form, mark=True, merged=True))
    return out


def state_mark(state: str) -> str:
    """The state column's mark: P pruned, S scaled, + SA restored, ~ measuring, "" original."""
    if state.startswith("measuring"):
        return "~"
    mark = "P" if state.startswith("pruned") else "S" if state.startswith("scaled") else ""
    return mark + ("+" if "SA restored" in state else "")


def cells(r: SuperWeightRow, form: int = FULL, mark: bool = False) -> dict[str, Text | str]:
    """Every column's cell for one row, the ratios in `form`; with `mark`, the state's mark
    before the layer (and the weight)."""
    impact: Text | str = Text("measuring", style="italic") if r.measuring else "—"
    strong = "bold" if r.is_super else "dim"
    if r.ratio is not None:
        impact = Text(ratio_text(r.ratio, form=form), style=strong)
    elif r.ppl_base and r.ppl_pruned:
        value = r.ppl_pruned / r.ppl_base
        # a ratio without its interval (an older snapshot's): its value alone
        impact = Text(ratio_text(Ratio(value, value, value, 0), form=VALUE), style=strong)
    control = Text(ratio_text(r.control, form=form), style="dim") if r.control is not None else "—"
    state = Text(r.state, style="reverse" if r.state not in ("original", "measuring…") else "dim")
    v = Verdict.of(r.verdict)
    layer = str(r.layer) if r.expert is None else f"{r.layer}·e{r.expert}"  # fused experts: its expert
    weight = Text()
    weight.append(state_mark(r.state) if mark else "", style="reverse")  # the mark alone stands out
    weight.append(f"{layer}[{r.row},{r.col}]")
    return {"layer": weight[:len(weight) - len(f"[{r.row},{r.col}]")], "row": str(r.row), "col": str(r.col),
            "verdict": verdict_cell(v, Verdict.of(r.provisional)),
            RATIO: impact, "state": state, "control": control, "role": r.role or "—", "value": f"{r.value:.4g}",
            "prompts": "—" if r.prompts_total is None else f"{r.prompts_spiking}/{r.prompts_total}",
            "share": "—" if r.share is None else f"{100 * r.share:.0f}%", "z": fmt(r.zscore, 1),
            "label": r.label or "", WEIGHT: weight}


def verdict_cell(v: Verdict | None, provisional: Verdict | None) -> Text:
    """The verdict, or while its controls are measured the one its treatment points to, marked
    provisional by a "?" (the detail pane says it in words)."""
    if v is not None:
        return Text(v.short, style=EMPHASIS[v.emphasis])
    if provisional is not None:
        return Text(f"{provisional.short}?", style=f"italic {EMPHASIS['doubt']}")
    return Text("—", style="dim")


def header(plan: Plan, column: str) -> str:
    return RATIO_HEADERS[plan.form] if column == RATIO else column


def width_of(plan: Plan, rows: list[dict], padding: int = 1) -> int:
    """The columns `plan` needs for these rows' cells (DataTable sizes a column to its widest)."""
    total = 0
    for column in plan.columns:
        widest = max([cell_len(header(plan, column))] + [cell_len(str(r[column])) for r in rows])
        total += widest + 2 * padding
    return total


def choose(rows: list[SuperWeightRow], width: int, padding: int = 1) -> tuple[Plan, list[dict]]:
    """The widest plan whose cells fit `width` columns (the narrowest if none does)."""
    drawn: dict[tuple, list[dict]] = {}
    options = plans()
    for plan in options:
        drawn[plan.form, plan.mark] = drawn.get((plan.form, plan.mark)) or [cells(r, plan.form, plan.mark) for r in rows]
        if width_of(plan, drawn[plan.form, plan.mark], padding) <= width:
            return plan, drawn[plan.form, plan.mark]
    last = options[-1]
    return last, drawn[last.form, last.mark]


class SuperWeightTable(DataTable):
    """j/k or ↑/↓ move; the selected row is what p, s, r and a act on."""

    BINDINGS = [("j", "cursor_down", "down"), ("k", "cursor_up", "up")]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.plan: Plan | None = None
        self._rows: list[SuperWeightRow] = []
        self._width = 0

    def _available(self) -> int:
        width = self.size.width
        if len(self._rows) + 1 > self.size.height > 0:  # the vertical scrollbar takes its share
            width -= self.styles.scrollbar_size_vertical
        return width

    def on_resize(self) -> None:
        if self._available() != self._width:
            self.show(self._rows)

    def show(self, rows: list[SuperWeightRow]) -> None:
        keep = self.selected_key()
        self._rows = list(rows)
        self._width = self._available()
        plan, drawn = choose(self._rows, self._width or 10 ** 6, self.cell_padding)
        if plan != self.plan:
            self.clear(columns=True)
            for column in plan.columns:
                self.add_column(header(plan, column), key=column)
            self.plan = plan
        else:
            self.clear()
        for r, d in zip(self._rows, drawn):
            self.add_row(*(d[c] for c in plan.columns), key=_row_key(r.key))
        if keep is not None:
            for i, r in enumerate(self._rows):
                if r.key == keep:
                    self.move_cursor(row=i)

    def cell_text(self, key: tuple, column: str) -> str:
        """The plain text of a row's cell in any column of `COLUMNS` (the state's words, the
        layer without its mark), shown now or given up."""
        row = next(r for r in self._rows if r.key == tuple(key))
        return str(cells(row, self.plan.form if self.plan else FULL)[column])

    def selected_key(self) -> tuple | None:
        """The (layer, row, col[, expert]) under the cursor (the rows are keyed by it), or None."""
        if self.row_count == 0 or self.cursor_row is None or not 0 <= self.cursor_row < self.row_count:
            return None
        key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        return tuple(int(x) for x in key.split(","))


def _row_key(key: tuple) -> str:
    return ",".join(map(str, key))
