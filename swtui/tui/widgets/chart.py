"""LayerSpikeChart: one bar pair per decoder layer (max |down_proj input|, max |down_proj output|),
or the residual stream max; spikes above the detection threshold drawn in the theme's error colour."""

from __future__ import annotations

import math

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"
VIEWS = ("down_proj", "residual")


class LayerSpikeChart(Widget, can_focus=True):
    """Per-layer spike bars. ←/→ or h/l move, enter selects, click selects."""

    COMPONENT_CLASSES = {"chart--in", "chart--out", "chart--resid", "chart--spike", "chart--selected",
                         "chart--axis"}
    BINDINGS = [
        Binding("left,h", "move(-1)", "prev layer", show=False),
        Binding("right,l", "move(1)", "next layer", show=False),
        Binding("home", "jump(0)", "first layer", show=False),
        Binding("end", "jump(-1)", "last layer", show=False),
        Binding("enter", "choose", "select layer", show=False),
    ]

    layers: reactive[list] = reactive(list, always_update=True)
    threshold: reactive[float] = reactive(0.0)
    selected: reactive[int] = reactive(0)
    log_scale: reactive[bool] = reactive(True)
    view: reactive[str] = reactive("down_proj")

    class LayerSelected(Message):
        def __init__(self, layer: int, chosen: bool) -> None:
            super().__init__()
            self.layer = layer
            self.chosen = chosen  # True for enter/click, False for cursor moves

    # -- actions --------------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        if self.layers:
            self.selected = max(0, min(len(self.layers) - 1, self.selected + step))
            self.post_message(self.LayerSelected(self.selected, False))

    def action_jump(self, where: int) -> None:
        if self.layers:
            self.selected = where % len(self.layers)
            self.post_message(self.LayerSelected(self.selected, False))

    def action_choose(self) -> None:
        if self.layers:
            self.post_message(self.LayerSelected(self.selected, True))

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        layer = self.layer_at(offset.x)
        if layer is not None:
            self.focus()
            self.selected = layer
            self.post_message(self.LayerSelected(layer, True))

    def layer_at(self, x: int) -> int | None:
        if not self.layers:
            return None
        per = self._per_layer()
        layer = x // per
        return layer if 0 <= layer < len(self.layers) else None

    # -- drawing --------------------------------------------------------------------------------
    def _per_layer(self) -> int:
        return max(1, self.size.width // max(1, len(self.layers)))

    def _series(self) -> list[tuple[str, list[float]]]:
        if self.view == "residual":
            return [("chart--resid", [s["resid_max"] for s in self.layers])]
        out = [s["out_max"] for s in self.layers]
        if self._per_layer() >= 2:
            return [("chart--in", [s["in_max"] for s in self.layers]), ("chart--out", out)]
        return [("chart--out", out)]

    def _scale(self, v: float) -> float:
        return math.log10(1.0 + max(v, 0.0)) if self.log_scale else max(v, 0.0)

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if not self.layers:
            return Strip([Segment("waiting for the first probe…".ljust(width)[:width],
                                  self.get_component_rich_style("chart--axis"))]) if y == 0 else Strip.blank(width)
        bar_rows = max(1, height - 1)
        per = self._per_layer()
        axis = self.get_component_rich_style("chart--axis")
        if y == bar_rows:  # axis line with layer numbers
            return self._axis_strip(width, per, axis)
        series = self._series()
        peak = max((self._scale(v) for _, vals in series for v in vals), default=1.0) or 1.0
        level_from_top = bar_rows - y  # 1 = bottom row
        segments = []
        widths = self._bar_widths(per, len(series))
        for i, stats in enumerate(self.layers):
            spike = self.view == "down_proj" and stats["out_max"] >= self.threshold > 0
            for k, (cls, vals) in enumerate(series):
                eighths = self._scale(vals[i]) / peak * bar_rows * 8
                fill = eighths - (level_from_top - 1) * 8
                ch = BLOCKS[int(max(0, min(8, round(fill))))]
                if i == self.selected and self.has_focus and ch == " " and level_from_top == 1:
                    ch = "·"
                style = self._fg("chart--spike" if spike and cls == "chart--out" else cls)
                segments.append(Segment(ch * widths[k], style))
            gap = per - sum(widths)
            if gap:
                segments.append(Segment(" " * gap))
        used = per * len(self.layers)
        if used < width:
            segments.append(Segment(" " * (width - used)))
        return Strip(segments, width)

    def _fg(self, component: str) -> Style:
        """A component's foreground only: bars sit on the widget's own background."""
        style = self.get_component_rich_style(component)
        return Style(color=style.color, bold=style.bold)

    @staticmethod
    def _bar_widths(per: int, n_series: int) -> list[int]:
        """Columns per bar: leave a one-column gap between layers when there is room."""
        room = per - 1 if per >= 3 else per
        room = min(room, 6 * n_series)
        if n_series == 1:
            return [max(1, room)]
        first = max(1, room // 2)
        return [first, max(1, room - first)]

    def _axis_strip(self, width: int, per: int, axis: Style) -> Strip:
        cells = [" "] * width
        n = len(self.layers)
        step = max(1, math.ceil(4 / per)) if per < 4 else 1
        step = 5 if n > 12 and per < 3 else step
        for i in range(0, n, step):
            label = str(i)
            x = i * per
            if x + len(label) <= width and all(c == " " for c in cells[x:x + len(label)]):
                cells[x:x + len(label)] = list(label)
        text = "".join(cells)
        sel_x = self.selected * per
        segs = [Segment(text[:sel_x], axis)]
        sel_style = self._fg("chart--selected") + Style(bold=True, reverse=True)
        marker = text[sel_x:sel_x + per]
        segs.append(Segment(marker if marker.strip() else "▲" + marker[1:], sel_style))
        segs.append(Segment(text[sel_x + per:], axis))
        return Strip(segs, width)

    def watch_view(self) -> None:
        self.refresh()

    def watch_log_scale(self) -> None:
        self.refresh()
