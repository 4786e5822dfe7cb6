"""StatusBar: model, device, dtype, size, quantization mode, edit count, inference state."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    info = reactive(None, always_update=True)  # protocol.ModelInfo once loaded
    quant_mode: reactive[str] = reactive("full precision")
    edits: reactive[int] = reactive(0)
    busy: reactive[str] = reactive("starting")

    def render(self) -> Text:
        info = self.info
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" swtui ", style="bold reverse")
        state = self.busy or "idle"
        t.append(f" {'◐' if self.busy else '●'} {state[:28]:<12}", style="bold" if self.busy else "")
        t.append(f"│ {self.quant_mode} · {self.edits} edit{'s' if self.edits != 1 else ''} │")
        if info:
            params = info.params
            size = f"{params / 1e9:.2f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"
            t.append(f" {info.name}", style="bold")
            sq = info.source_quant
            if sq.quantized:  # every weight already sits on the source's grid: said beside the name
                t.append(f" · {sq.down_type} source", style="bold")
            t.append(f" · {info.device} · {info.dtype} · {size} · {info.layers} layers")
        else:
            t.append(" loading model…")
        return t
