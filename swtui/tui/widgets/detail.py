"""LayerDetail: the selected candidate's evidence, then the selected layer's spike coordinates
and the weight where they meet (as many lines as the pane has: the candidate's first).

The candidate's evidence is shown whole at any size, each line written for the pane's width
(`evidence_text`): the verdict and the state, the ratio pruned with its 95% interval, the
control(s) (their spread, and the worst one with its interval), the ratio with the super
activation restored, and the tokens the ratios were measured on."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from swtui.core.verdicts import Verdict
from swtui.fmt import compact
from swtui.tui.evidence_text import fit_words, ratio_text, spread

LABEL = 9  # the width of an evidence line's label ("pruned", "control", …)


def control_ratios(r) -> list:
    """The ratios of a candidate's controls: the evidence's (several), or its one control."""
    evidence = getattr(r, "evidence", None)
    controls = [getattr(c, "ratio", None) for c in (getattr(evidence, "controls", None) or ())]
    controls = [c for c in controls if c is not None]
    return controls or ([r.control] if r.control is not None else [])


#: what an evidence line is, for `fit_height`: the evidence itself is kept at any height; the
#: state (the table marks it on the row) and the ratio with the SA restored give way first
KEEP, STATE, EXTRA = 0, 1, 2


def fit_height(lines: list[tuple[str, str, int]], height: int) -> list[tuple[str, str, int]]:
    """`lines` without the least needed ones (EXTRA, then STATE) while they overflow `height`."""
    for drop in (EXTRA, STATE):
        if len(lines) > height:
            lines = [line for line in lines if line[2] != drop]
    return lines


def evidence_lines(r, width: int) -> list[tuple[str, str, int]]:
    """The candidate's evidence as (text, style, kind) lines of at most `width` columns."""
    v = Verdict.of(r.verdict)
    layer = str(r.layer) if r.expert is None else f"{r.layer}·e{r.expert}"
    p = Verdict.of(getattr(r, "provisional", None))
    said = "not judged" if v is None and p is None else str(v) if v is not None else f"{p}? (provisional)"
    head = f"{layer}[{r.row},{r.col}] {said}"
    if len(head) > width and (v or p) is not None:
        head = f"{layer}[{r.row},{r.col}] " + (v.short if v is not None else f"{p.short}?")
    lines = [(fit_words(head, width), "bold", KEEP), (fit_words(f"now {r.state}", width), "dim", STATE)]

    def ratio(label: str, value, style: str = "", kind: int = KEEP) -> None:
        if value is not None:
            lines.append((f"{label:<{LABEL}}" + ratio_text(value, width - LABEL), style, kind))

    if r.ratio is None and r.measuring:
        lines.append((f"{'pruned':<{LABEL}}measuring", "italic", KEEP))
    ratio("pruned", r.ratio, "bold")
    controls = control_ratios(r)
    if len(controls) > 1:
        worst = max(controls, key=lambda c: c.value)
        lines.append((fit_words(f"{'controls':<{LABEL}}{len(controls)}: {spread(controls)}", width), "", KEEP))
        ratio("worst", worst, "dim")
    else:
        ratio("control", controls[0] if controls else None, "dim")
    if p is not None and not controls:
        lines.append((fit_words(f"{'controls':<{LABEL}}measuring: the verdict waits for them", width), "italic", KEEP))
    ratio("SA back", r.sa_ratio, "dim", EXTRA)
    tokens = next((x.tokens for x in (r.ratio, *controls) if x is not None), None)
    level = getattr(getattr(r, "evidence", None), "level", None)
    if tokens:
        # the plan's intervals: each at its Bonferroni level, 95% for all of them together
        head = f"{'tokens':<{LABEL}}{tokens}"
        said = [f" · CI {100 * level:.1f}% each, 95% jointly", f" · CI {100 * level:.1f}%"] if level else [""]
        lines.append((fit_words(head + next((t for t in said if len(head + t) <= width), said[-1]), width), "dim", KEEP))
    return lines


class LayerDetail(Static):
    stats = reactive(None, always_update=True)  # a protocol.LayerRow
    tokens: reactive[list] = reactive(list)
    threshold: reactive[float] = reactive(0.0)
    candidate = reactive(None, always_update=True)  # the table's selected protocol.SuperWeightRow

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        lines = fit_height(evidence_lines(self.candidate, width), height) if self.candidate is not None else []
        t = Text(no_wrap=True, overflow="ellipsis")
        for i, (text, style, _) in enumerate(lines):
            t.append(("\n" if i else "") + text, style=style)
        layer = self.layer_text()
        if not lines or len(lines) + 1 + len(layer.plain.splitlines()) <= height:
            if lines:
                t.append("\n\n")
            t.append_text(layer)
        return t

    def layer_text(self) -> Text:
        """The selected layer's spike coordinates and the weight where they meet."""
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
