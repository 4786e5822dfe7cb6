"""HelpScreen: every key, what it does, and the paper's vocabulary in two lines."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# swtui — keys

| key | action |
|---|---|
| ←/→ or h/l | move along the layers of the spike chart |
| enter / click | select the layer: its spike coordinates and W[row, col] |
| n | name the selected layer's spike a super weight (with a label) |
| j/k or ↑/↓ | move in the super weight table |
| p | prune / unprune the selected super weight |
| s | scale it (asks for a finite factor) |
| r / R | restore the selected / restore everything (bit-exact) |
| a | toggle "restore super activation" for the selected super weight |
| z | activation ablation: zero the selected layer's MLP write on its spike channel (again: undo) |
| d | run detection again |
| w | writers judged together: per residual channel, what pruning them (with / without SA restore) and zeroing the write do |
| g / e | regenerate / edit the prompt |
| Q | quantization presets: enter applies, a adds as a variant, f opens the form; or full precision |
| F | quantization form: method, bits, grouping and size, clip z, keep SW, activation bits/site, SA handling |
| C | compare the baseline and up to three variants side by side (default: W4 per tensor, naive vs clip z9 + keep SW) |
| S / B | scale sweep of the selected super weight / naive vs SW-aware RTN by block size (charts; esc cancels) |
| x | export a snapshot (JSON + SVG + Markdown) to snapshots/ |
| L / v | log scale on/off / switch chart view (down_proj ↔ residual) |
| esc | cancel running work |
| t | next theme |
| ctrl+p | command palette (every action) |
| ? / F1 | this help |
| q | quit |

A **super weight** W[row, col] of a layer's `mlp.down_proj` meets an outlier input channel `col`
and writes a **super activation** into output channel `row`, which then rides the residual stream.
Bars: pale = max |down_proj input|, bright = max |down_proj output|; red = above the spike threshold.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(HELP)
