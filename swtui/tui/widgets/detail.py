"""LayerDetail: the selected layer's spike coordinates and the weight where they meet."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from swtui.fmt import compact


class LayerDetail(Static):
    stats = reactive(None, always_update=True)  # a protocol.LayerRow
    tokens: reactive[list] = reactive(list)
    threshold: reactive[float] = reactive(0.0)

    def render(self) -> Text:
        s = self.stats
        if not s:
            return Text("select a layer: ←/→ or h/l, enter, or click a bar", style="dim")

        def tok(i: int) -> str:
            return repr(self.tokens[i]) if 0 <= i < len(self.tokens) else str(i)

        spike = s.out_max >= self.threshold > 0
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"layer {s.layer}", style="bold")
        if spike:
            t.append("  ")
            t.append(" SPIKE ", style="bold reverse")
        t.append(f"\nin  {compact(s.in_max):>6} @ch {s.in_channel:<5} → col")
        t.append(f" {tok(s.in_token)}", style="dim")
        t.append(f"\nout {compact(s.out_max):>6} @ch {s.out_channel:<5} → row")
        t.append(f" {tok(s.out_token)}", style="dim")
        w = s.weight
        if getattr(s, "expert", None) is not None:  # fused experts: the spiking expert's weight
            col = s.in_channel if s.attr_col is None else s.attr_col
            t.append(f"\nexpert {s.expert} of {len(s.experts or [])} routed · E: experts", style="dim")
            t.append(f"\nW_e{s.expert}[{s.out_channel}, {col}] = " + (f"{w:.4g}" if w is not None else "—"),
                     style="bold")
        else:
            t.append(f"\nW[{s.out_channel}, {s.in_channel}] = " + (f"{w:.4g}" if w is not None else "—"),
                     style="bold")
        t.append(f"\nresid {compact(s.resid_max)} @ch {s.resid_channel}")
        t.append("  n: name it", style="dim")
        return t
