"""CompareScreen: the baseline and up to three quantization variants, side by side.

One column per variant: what it is, perplexity (and its ratio to the baseline), stopword mass,
and its greedy generation streaming in. Filled from the engine's VariantToken / VariantMeasured /
ComparisonDone events; `r` runs the comparison again, esc goes back (cancelling a running one).
What the owner must do is asked with messages (`swtui.tui.messages`), never by calling it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from swtui.core.engine.protocol import Metrics
from swtui.tui.evidence_text import printable, sig
from swtui.tui.messages import CancelWork, ExportSnapshot, RunComparison
from swtui.tui.widgets.notice import NoticeLine


def _column_id(index: int) -> str:
    return f"variant-{index}"


class CompareScreen(Screen[None]):
    BINDINGS = [Binding("escape", "back", "back (cancels a running comparison)"), Binding("r", "rerun", "run again"),
                Binding("x", "export", "export (with this screen)")]

    def __init__(self, variants: list, descriptions: dict[str, str]):
        """`variants`: `quant.config.Variant`s; `descriptions`: what each is, by name."""
        super().__init__()
        self.names = ["baseline"] + [v.name for v in variants]
        self.variants = variants
        self.descriptions = {"baseline": "the unedited model, full precision", **descriptions}
        self.results: dict[str, Metrics] = {}
        self.status = "measuring…"

    def compose(self) -> ComposeResult:
        yield Static(id="compare-status")
        yield NoticeLine()
        with Horizontal(id="compare-columns"):
            for i, name in enumerate(self.names):
                with Vertical(id=_column_id(i), classes="compare-column"):
                    yield Static(Text(name, style="bold"), classes="compare-title")
                    yield Static(self.descriptions.get(name, ""), classes="compare-what")
                    yield Static("perplexity …", classes="compare-metrics")
                    yield Static("", classes="compare-generation")
        yield Footer()

    def on_mount(self) -> None:
        self._draw_status()

    def show_notice(self, text: str | None, severity: str = "information", timeout: float = 5.0) -> None:
        """The app's notifications, on this screen's notice line (no toast over its columns)."""
        self.query_one(NoticeLine).show(text, severity, timeout)

    def _column(self, name: str):
        return self.query_one(f"#{_column_id(self.names.index(name))}")

    def _draw_status(self) -> None:
        done = sum(1 for n in self.names if n in self.results)
        self.query_one("#compare-status", Static).update(
            f"{self.status}  {done}/{len(self.names)} measured · perplexity on the bundled text, stopword mass "
            "over the prompt set, greedy generation of the prompt · r: run again · esc: back")

    def token(self, name: str, text: str) -> None:
        if name in self.names:
            self._column(name).query_one(".compare-generation", Static).update(Text(printable(text)))

    def measured(self, name: str, metrics: Metrics) -> None:
        if name not in self.names:
            return
        self.results[name] = metrics
        base = self.results.get("baseline")
        ppl = metrics.perplexity
        text = Text(f"perplexity {sig(ppl, 4)}")  # fixed significant digits: 79.43, 3.413G, never wrapped
        ratio = ppl / base.perplexity if base and name != "baseline" else None
        if ratio is not None:
            text.append(f"  ×{sig(ratio)}", style="bold")
        text.append(f"\nstopword mass {sig(metrics.stopword_mass)}")
        column = self._column(name)
        box = column.query_one(".compare-metrics", Static)
        box.update(text)
        box.set_class(ratio is not None and ratio >= 1.5, "-hurts")  # coloured by the theme's $error
        column.query_one(".compare-generation", Static).update(Text(printable(metrics.generation or "")))
        self._draw_status()

    def finished(self, cancelled: bool) -> None:
        self.status = "cancelled" if cancelled else "done"
        self._draw_status()

    def action_export(self) -> None:
        """A snapshot whose screen.svg is this comparison (the snapshot holds its figures too)."""
        self.post_message(ExportSnapshot())

    def action_back(self) -> None:
        if self.status == "measuring…":
            self.post_message(CancelWork())
        self.dismiss()

    def action_rerun(self) -> None:
        self.results.clear()
        self.status = "measuring…"
        for name in self.names:
            column = self._column(name)
            column.query_one(".compare-metrics", Static).update("perplexity …")
            column.query_one(".compare-generation", Static).update("")
        self._draw_status()
        self.post_message(RunComparison(self.variants))
