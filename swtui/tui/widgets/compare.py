"""ComparisonPanel: baseline vs current generation (streaming, first divergence marked) and the
stopword table (mass baseline vs current, the tokens that moved most)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from swtui.core.protocol import StopwordReport


class GenerationDiff(Static):
    """One side of the comparison; `mark_from` highlights everything from the first divergence."""

    def show(self, text: str, mark_from: int | None = None) -> None:
        t = Text(no_wrap=False)
        if mark_from is None:
            t.append(text)
        else:
            t.append(text[:mark_from])
            t.append(text[mark_from:mark_from + 1] or "∅", style="reverse")
            t.append(text[mark_from + 1:], style="italic")
        self.update(t)


class StopwordTable(Static):
    """Stopword mass and perplexity, base vs now, and the tokens whose probability moved most."""

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

    def _draw(self) -> None:
        report = self.report
        mass = report.mass if report else {}
        table = Table(box=None, expand=True, pad_edge=False, show_edge=False)
        table.add_column("token")
        table.add_column("base", justify="right")
        table.add_column("now", justify="right")
        table.add_column("×", justify="right")
        b, c = mass.get("base"), mass.get("current")
        if b is not None and c is not None:
            table.add_row(Text("mass", style="bold"), f"{b:.3f}", f"{c:.3f}", f"{c / b:.2f}" if b else "—")
        ppl = self.perplexity
        if ppl.get("base") and ppl.get("current"):
            table.add_row(Text("ppl", style="bold"), f"{ppl['base']:.2f}", f"{ppl['current']:.2f}",
                          f"{ppl['current'] / ppl['base']:.2f}")
        movers = sorted((report.top_stopwords + report.top_other) if report else (),
                        key=lambda r: -abs(r.current - r.base))[:6]
        for r in movers:
            table.add_row(repr(r.token), f"{r.base:.3f}", f"{r.current:.3f}", f"{r.ratio:.2f}")
        self.update(table)


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
