"""HelpScreen: every key, what it does, and the paper's vocabulary in two lines."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from swtui.tui.actions import help_rows

def help_markdown() -> str:
    rows = "\n".join(f"| {keys} | {what} |" for keys, what in help_rows())
    return f"""\
# swtui — keys

| key | action |
|---|---|
| enter / click | select the layer: its spike coordinates and W[row, col] |
{rows}

Keys dimmed in the footer (and entries dimmed in the palette) cannot apply yet: pressing one
says what it needs.

A **super weight** W[row, col] of a layer's `mlp.down_proj` meets an outlier input channel `col`
and writes a **super activation** into output channel `row`, which then rides the residual stream.
Bars: pale = max |down_proj input|, bright = max |down_proj output|; red = above the spike threshold.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(help_markdown())
