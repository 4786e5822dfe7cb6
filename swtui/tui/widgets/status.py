"""StatusBar: model, device, dtype, size, quantization mode, edit count, inference state with its
progress, and the last notice (the app's notifications are drawn here, never as toasts over figures).

The line is written for its width: the stage and its percentage are always whole (they are what
the user waits on), then the notice (shortened at a word, never inside a number), and the rest gives
way in `DROP` order: the gauge and the decoration first, the model's details next, its name last.
Progress lives in this line rather than in a bar of its own, so a long step never adds a row to a
screen that has none to spare (at 80×24 the extra row made the whole screen scroll).
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from swtui.tui.evidence_text import fit_words

#: what the line gives up first, first to last (`parts` names its segments so)
DROP = ("gauge", "badge", "layers", "size", "dtype", "device", "source", "edits", "name", "mode")


class StatusBar(Static):
    COMPONENT_CLASSES = {"status--warning", "status--error", "status--information"}

    info = reactive(None, always_update=True)  # protocol.ModelInfo once loaded
    quant_mode: reactive[str] = reactive("full precision")
    edits: reactive[int] = reactive(0)
    busy: reactive[str] = reactive("starting")
    notice: reactive[tuple[str, str] | None] = reactive(None)  # (text, severity) of the last notification
    fraction: reactive[float | None] = reactive(None)  # the stage's measurable progress, 0..1 (None: not measurable)

    #: the gauge's cells (eighths of a cell drawn by the block characters)
    GAUGE = 10

    def parts(self) -> list[tuple[str, str, str]]:
        """The line's segments as (name, text, style), in their order."""
        info = self.info
        state = self.busy or "idle"
        done = self.fraction if self.busy and self.fraction is not None else None
        percent = "" if done is None else f" {min(int(done * 100), 99)}%"
        out = [("badge", " swtui ", "bold reverse"),
               ("stage", f" {'◐' if self.busy else '●'} {state}{percent} ", "bold" if self.busy else "")]
        if done is not None:
            out.append(("gauge", gauge(done, self.GAUGE) + " ", "status--information"))
        out += [("mode", f"│ {self.quant_mode}", ""),
                ("edits", f" · {self.edits} edit{'s' if self.edits != 1 else ''}", "")]
        if info:
            params = info.params
            size = f"{params / 1e9:.2f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"
            out.append(("name", f" │ {info.name}", "bold"))
            sq = info.source_quant
            if sq.quantized:  # every weight already sits on the source's grid: said beside the name
                out.append(("source", f" · {sq.down_type} source", "bold"))
            out += [("device", f" · {info.device}", ""), ("dtype", f" · {info.dtype}", ""),
                    ("size", f" · {size}", ""), ("layers", f" · {info.layers} layers", "")]
        else:
            out.append(("name", " │ loading model…", ""))
        return out

    #: the notice's least room: the model's details give way to it down to this
    NOTICE_ROOM = 50

    def render(self) -> Text:
        width = self.size.width or 200
        parts = self.parts()
        if self.notice is not None:  # after the stage, where the eye is
            message, severity = self.notice
            parts.insert(next(i for i, p in enumerate(parts) if p[0] == "stage") + 1, ("notice", f"│ {message} ", f"status--{severity}"))

        def needed(ps) -> int:
            return sum(min(len(x), self.NOTICE_ROOM) if n == "notice" else len(x) for n, x, _ in ps)

        for name in DROP:
            if needed(parts) <= width:
                break
            parts = [p for p in parts if p[0] != name]
        t = Text(no_wrap=True, overflow="crop")
        for name, text, style in parts:
            others = sum(len(x) for n, x, _ in parts if n != name)
            if name == "notice" and others + len(text) > width:
                text = "│ " + fit_words(text[2:].strip(), max(width - others - 3, 1)) + " "
            elif name == "stage" and len(text) > width:
                text = " " + fit_words(text.strip(), width - 1)
            if style.startswith("status--"):
                t.append(text, style=self.get_component_rich_style(style, partial=True))
            else:
                t.append(text, style=style)
        return t


def gauge(fraction: float, cells: int) -> str:
    """`fraction` (0..1) as a bar of `cells` cells, in eighths: ▕████▌     ▏"""
    eighths = max(0, min(round(fraction * cells * 8), cells * 8))
    full, part = divmod(eighths, 8)
    body = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    return "▕" + body.ljust(cells) + "▏"
