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

from swtui.fmt import compact

BLOCKS = " ▁▂▃▄▅▆▇█"
GUTTER = 6  # y-axis labels: "10k ┤"


def axis_label(value: float) -> str:
    """At most four characters: 1, 10, 100, 1k, 10k, 100k, 1M, 2.5k…"""
    for unit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= unit:
            v = value / unit
            return f"{v:.0f}{suffix}" if v >= 10 or v == int(v) else f"{v:.1f}{suffix}"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
VIEWS = ("down_proj", "residual")


class LayerSpikeChart(Widget, can_focus=True):
    """Per-layer spike bars. ←/→ or h/l move, enter selects, click selects."""

    DEFAULT_CSS = """
    LayerSpikeChart {
        height: 1fr;
        min-height: 9;
        max-height: 24;
        border: round $secondary;
        border-title-color: $foreground;
        border-subtitle-color: $text-muted;
        background: $surface;
    }

    LayerSpikeChart:focus {
        border: round $primary;
    }

    LayerSpikeChart > .chart--in { color: $secondary; }
    LayerSpikeChart > .chart--out { color: $primary; }
    LayerSpikeChart > .chart--resid { color: $accent; }
    LayerSpikeChart > .chart--spike { color: $error; text-style: bold; }
    LayerSpikeChart > .chart--selected { background: $accent 40%; color: $accent; }
    LayerSpikeChart > .chart--axis { color: $text-muted; }
    """
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
        layer = (x - self._gutter()) // self._per_layer()
        return layer if x >= self._gutter() and 0 <= layer < len(self.layers) else None

    def x_of(self, layer: int) -> int:
        """The content column where `layer`'s bars start (the inverse of `layer_at`)."""
        return self._gutter() + layer * self._per_layer()

    # -- drawing --------------------------------------------------------------------------------
    def _gutter(self) -> int:
        """Columns of the y-axis labels (none when the chart is too narrow to spare them)."""
        return GUTTER if self.size.width >= 40 else 0

    def _per_layer(self) -> int:
        return max(1, (self.size.width - self._gutter()) // max(1, len(self.layers)))

    def _series(self) -> list[tuple[str, list[float]]]:
        if self.view == "residual":
            return [("chart--resid", [s.resid_max for s in self.layers])]
        out = [s.out_max for s in self.layers]
        if self._per_layer() >= 2:
            return [("chart--in", [s.in_max for s in self.layers]), ("chart--out", out)]
        return [("chart--out", out)]

    def _scale(self, v: float) -> float:
        return math.log10(1.0 + max(v, 0.0)) if self.log_scale else max(v, 0.0)

    def _peak(self) -> float:
        return max((self._scale(v) for _, vals in self._series() for v in vals), default=1.0) or 1.0

    def _row_of(self, value: float, bar_rows: int, peak: float) -> int:
        """The bar row (1 = bottom) in which `value` falls."""
        return max(1, min(bar_rows, math.ceil(self._scale(value) / peak * bar_rows)))

    def _y_labels(self, bar_rows: int, peak: float) -> dict[int, str]:
        """{row from the bottom: label}: decades in the log view, values in the linear one."""
        labels: dict[int, str] = {}
        if self.log_scale:
            top = 10 ** peak
            decade = 1.0
            while decade <= top:
                labels[self._row_of(decade, bar_rows, peak)] = axis_label(decade)
                decade *= 10
            # the largest decade wins its row; keep labels at least one row apart
            kept: dict[int, str] = {}
            for row in sorted(labels, reverse=True):
                if not any(abs(row - k) < 2 for k in kept):
                    kept[row] = labels[row]
            return kept
        for frac in (1.0, 0.5):
            labels[max(1, round(frac * bar_rows))] = axis_label(frac * peak)
        return labels

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if not self.layers:
            return Strip([Segment("waiting for the first probe…".ljust(width)[:width],
                                  self.get_component_rich_style("chart--axis"))]) if y == 0 else Strip.blank(width)
        bar_rows = max(1, height - 1)
        per = self._per_layer()
        gutter = self._gutter()
        axis = self.get_component_rich_style("chart--axis")
        if y == bar_rows:  # axis line with layer numbers
            return self._axis_strip(width, per, gutter, axis)
        series = self._series()
        peak = self._peak()
        level_from_top = bar_rows - y  # 1 = bottom row
        segments = []
        if gutter:
            label = self._y_labels(bar_rows, peak).get(level_from_top, "")
            segments.append(Segment(f"{label:>{gutter - 2}} ┤" if label else " " * (gutter - 1) + "│", axis))
        threshold_row = (self.view == "down_proj" and self.threshold > 0
                         and self._row_of(self.threshold, bar_rows, peak) == level_from_top)
        line_style = self._fg("chart--spike")
        widths = self._bar_widths(per, len(series))
        for i, stats in enumerate(self.layers):
            spike = self.view == "down_proj" and stats.out_max >= self.threshold > 0
            for k, (cls, vals) in enumerate(series):
                eighths = self._scale(vals[i]) / peak * bar_rows * 8
                fill = eighths - (level_from_top - 1) * 8
                ch = BLOCKS[int(max(0, min(8, round(fill))))]
                if i == self.selected and self.has_focus and ch == " " and level_from_top == 1:
                    ch = "·"
                if ch == " " and threshold_row:  # the spike threshold, drawn where no bar is
                    segments.append(Segment("╌" * widths[k], line_style))
                    continue
                style = self._fg("chart--spike" if spike and cls == "chart--out" else cls)
                segments.append(Segment(ch * widths[k], style))
            gap = per - sum(widths)
            if gap:
                segments.append(Segment(("╌" if threshold_row else " ") * gap, line_style))
        used = gutter + per * len(self.layers)
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

    def _axis_strip(self, width: int, per: int, gutter: int, axis: Style) -> Strip:
        """Layer numbers; spike layers always labelled (in the spike colour), the selection marked."""
        cells = [" "] * width
        owner = [None] * width  # which layer a label belongs to
        n = len(self.layers)
        step = max(1, math.ceil(4 / per)) if per < 4 else 1
        step = 5 if n > 12 and per < 3 else step
        spikes = [i for i, st in enumerate(self.layers) if self.view == "down_proj" and st.out_max >= self.threshold > 0]
        for i in spikes + [i for i in range(0, n, step) if i not in spikes]:
            label = str(i)
            x = gutter + i * per
            if x + len(label) <= width and all(c == " " for c in cells[max(gutter, x - 1):x + len(label) + 1]):
                cells[x:x + len(label)] = list(label)
                owner[x:x + len(label)] = [i] * len(label)
        if gutter:
            cells[gutter - 1] = "└"
        spike_style = self._fg("chart--spike")
        sel_style = self._fg("chart--selected") + Style(bold=True, reverse=True)
        sel_x = gutter + self.selected * per
        segs = []
        for x, ch in enumerate(cells):
            if sel_x <= x < sel_x + per:
                segs.append(Segment("▲" if x == sel_x and ch == " " else ch, sel_style))
            elif owner[x] in spikes:
                segs.append(Segment(ch, spike_style))
            else:
                segs.append(Segment(ch, axis))
        return Strip(Segment.simplify(segs), width)

    def title(self) -> str:
        """The border title: what is drawn, the scale, the selected layer's figures."""
        what = "down_proj max |in| / |out|" if self.view == "down_proj" else "residual stream max |h|"
        text = f"{what} · {'log' if self.log_scale else 'linear'}"
        if self.layers and 0 <= self.selected < len(self.layers):
            st = self.layers[self.selected]
            if self.view == "down_proj":
                text += (f" · layer {self.selected}: in {compact(st.in_max)} @{st.in_channel}, "
                         f"out {compact(st.out_max)} @{st.out_channel}")
            else:
                text += f" · layer {self.selected}: {compact(st.resid_max)} @{st.resid_channel}"
        return text

    def _retitle(self) -> None:
        self.border_title = self.title()

    def watch_layers(self) -> None:
        self._retitle()

    def watch_selected(self) -> None:
        self._retitle()

    def watch_view(self) -> None:
        self._retitle()
        self.refresh()

    def watch_log_scale(self) -> None:
        self._retitle()
        self.refresh()
