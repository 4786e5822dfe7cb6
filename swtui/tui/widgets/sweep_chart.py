"""SweepChart: a sweep as horizontal bars on a log axis (scale factors, or block sizes with naive
vs super-outlier-aware bars side by side)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

BAR = "█"


class SweepChart(Widget):
    DEFAULT_CSS = """
    SweepChart { height: auto; min-height: 4; }
    SweepChart > .sweep--bar { color: $primary; }
    SweepChart > .sweep--naive { color: $error; }
    SweepChart > .sweep--aware { color: $success; }
    SweepChart > .sweep--axis { color: $text-muted; }
    SweepChart > .sweep--best { text-style: bold; }
    """
    COMPONENT_CLASSES = {"sweep--bar", "sweep--naive", "sweep--aware", "sweep--axis", "sweep--best"}

    kind: reactive[str] = reactive("scale")
    rows: reactive[list] = reactive(list, always_update=True, layout=True)

    def series(self) -> list[tuple[str, str, float]]:
        """(label, component, value) per bar."""
        out = []
        for r in self.rows:
            if self.kind == "scale":
                out.append((f"×{r.factor:g}", "sweep--bar", r.perplexity))
            else:
                out.append((f"{r.label} naive", "sweep--naive", r.naive))
                out.append((f"{r.label} SW-aware", "sweep--aware", r.sw_aware))
        return out

    def render(self) -> Text:
        bars = self.series()
        axis = self.get_component_rich_style("sweep--axis")
        if not bars:
            return Text("waiting for the first row…", style=axis)
        values = [v for _, _, v in bars if v > 0 and math.isfinite(v)]
        lo, hi = (min(values), max(values)) if values else (1.0, 1.0)
        label_w = max(len(label) for label, _, _ in bars) + 1
        width = max(10, self.size.width - label_w - 12)
        span = math.log(hi) - math.log(lo) if hi > lo else 1.0
        best = min(values) if values else None
        text = Text(f"{'':<{label_w}}perplexity, log axis {lo:,.4g} … {hi:,.4g}\n", style=axis)
        for label, component, value in bars:
            frac = (math.log(value) - math.log(lo)) / span if value > 0 and math.isfinite(value) else 1.0
            n = max(1, round(1 + frac * (width - 1)))
            text.append(f"{label:<{label_w}}", style=axis)
            text.append(BAR * n, style=self.get_component_rich_style(component))
            style = self.get_component_rich_style("sweep--best") if value == best and self.kind == "scale" else None
            text.append(f" {value:,.4g}\n", style=style)
        return text
