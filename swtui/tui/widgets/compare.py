"""ComparisonPanel: baseline vs current generation (streaming, first divergence marked) and the
stopword table (mass baseline vs current, the tokens that moved most)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from swtui.core.engine.protocol import StopwordReport
from swtui.tui.evidence_text import printable, sig


class GenerationDiff(Static):
    """One side of the comparison; `mark_from` highlights everything from the first divergence."""

    def show(self, text: str, mark_from: int | None = None) -> None:
        t = Text(no_wrap=False)
        text = printable(text)  # one character for one: mark_from still points where it did
        if mark_from is None:
            t.append(text)
        else:
            t.append(text[:mark_from])
            t.append(text[mark_from:mark_from + 1] or "∅", style="reverse")
            t.append(text[mark_from + 1:], style="italic")
        self.update(t)


class StopwordTable(Static):
    """Stopword mass and perplexity, base vs now, and the tokens whose probability moved most.

    Its figures keep a fixed number of significant digits (`evidence_text.sig`): 3 where the
    pane is wide enough for them, else 2; the token column takes what is left (a token may be
    shortened, a figure never is)."""

    HEADER = ("token", "base", "now", "×")
    MIN_TOKEN = 5  # the token column's narrowest

    def on_mount(self) -> None:
        self.report: StopwordReport | None = None
        self.perplexity: dict = {}

    def show(self, report: StopwordReport) -> None:
        """A new stopword report: the perplexity shown before belonged to another state."""
        self.report, self.perplexity = report, {}
        self._draw()

    def show_perplexity(self, perplexity: dict) -> None:
        self.perplexity = perplexity
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def figures(self) -> list[tuple[str, float, float, float | None]]:
        """The rows: (label, base, now, now/base)."""
        report = self.report
        rows = []
        mass = report.mass if report else {}
        b, c = mass.get("base"), mass.get("current")
        if b is not None and c is not None:
            rows.append(("mass", b, c, c / b if b else None))
        ppl = self.perplexity
        if ppl.get("base") and ppl.get("current"):
            rows.append(("ppl", ppl["base"], ppl["current"], ppl["current"] / ppl["base"]))
        movers = sorted((report.top_stopwords + report.top_other) if report else (),
                        key=lambda r: -abs(r.current - r.base))[:6]
        rows += [(repr(r.token), r.base, r.current, r.ratio) for r in movers]
        return rows

    def layout(self, width: int, height: int | None = None) -> tuple[list[list[str]], list[int]]:
        """The cells as text and the columns' widths for `width` columns (of the rows that
        `height` lines show under the header)."""
        figures = self.figures()[:None if height is None else max(0, height - 1)]
        for digits in (3, 2):
            rows = [[label, sig(base, digits), sig(now, digits), sig(ratio, digits)]
                    for label, base, now, ratio in figures]
            widths = [max(len(row[i]) for row in rows + [list(self.HEADER)]) for i in range(4)]
            numbers = sum(widths[1:]) + 3  # a space before each figure
            if numbers + self.MIN_TOKEN <= width:
                break
        widths[0] = max(self.MIN_TOKEN, min(widths[0], width - numbers))
        return rows, widths

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        rows, widths = self.layout(self.size.width or 40, self.size.height or None)
        pad = max(0, (self.size.width or 40) - sum(widths) - 3)  # the slack goes to the token column
        t = Text(no_wrap=True)

        def line(cells: list[str], style: str = "", label_style: str = "") -> None:
            label = cells[0] if len(cells[0]) <= widths[0] else cells[0][:widths[0] - 1] + "…"
            t.append(f"{label:<{widths[0] + pad}}", style=label_style or style)
            for cell, w in zip(cells[1:], widths[1:]):
                t.append(f" {cell:>{w}}", style=style)

        line(list(self.HEADER), style="bold")
        for i, cells in enumerate(rows):
            t.append("\n")
            line(cells, label_style="bold" if cells[0] in ("mass", "ppl") and i < 2 else "")
        self.update(t)


class ComparisonPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="prompt-line")
        with Horizontal(id="gen-row"):
            yield GenerationDiff(id="gen-base", classes="gen")
            yield GenerationDiff(id="gen-current", classes="gen")
            yield StopwordTable(id="stopwords")

    def on_mount(self) -> None:
        self.query_one("#gen-base").border_title = "baseline"
        self.query_one("#gen-current").border_title = "current"
        self.query_one("#stopwords").border_title = "stopwords"

    def set_prompt(self, prompt: str, mode: str = "") -> None:
        t = Text()
        t.append("prompt ", style="bold")
        t.append(prompt)
        if mode:
            t.append(f"   ({mode})", style="dim")
        self.query_one("#prompt-line", Static).update(t)
