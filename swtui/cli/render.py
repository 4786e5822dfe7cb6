"""Rich renderings shared by the headless commands and `swtui report`."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from swtui.fmt import compact, fmt  # noqa: F401 - used by the tables below


def layer_table(layers: list[dict], threshold: float | None = None, title: str = "down_proj spikes per layer") -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("layer", "max|in|", "ch→col", "tok", "max|out|", "ch→row", "tok", "max|resid|", "ch"):
        t.add_column(col, justify="right")
    for s in layers:
        spike = threshold is not None and s["out_max"] >= threshold
        style = "bold red" if spike else None
        t.add_row(str(s["layer"]), compact(s["in_max"]), str(s["in_channel"]), str(s["in_token"]),
                  compact(s["out_max"]), str(s["out_channel"]), str(s["out_token"]),
                  compact(s["resid_max"]), str(s["resid_channel"]), style=style)
    return t


def share_text(share) -> str:
    return "—" if share is None else f"{100 * share:.0f}%"


def prompts_text(c: dict) -> str:
    return "—" if c.get("prompts_total") is None else f"{c['prompts_spiking']}/{c['prompts_total']}"


def ci_text(value, ci) -> str:
    """×value [lo, hi], or — when not measured."""
    from swtui.core.evidence.stats import fmt_ratio

    if value is None:
        return "—"
    text = f"×{fmt_ratio(value)}"
    return text + (f" [{fmt_ratio(ci[0])}, {fmt_ratio(ci[1])}]" if ci and None not in ci else "")


def super_weight_table(candidates: list[dict], title: str = "super weight candidates") -> Table:
    if any(c.get("ppl_base") for c in candidates):
        # each arm stopped at its own look: its ratio is against the unedited model on its own windows
        title += " (ratios against the unedited model on the same windows; tokens per row)"
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("weight", "value", "|x·w|", "|out|", "share", "prompts", "pruned", "controls (worst)", "+SA", "role",
                "tokens", "verdict"):
        t.add_column(col, justify="right", no_wrap=col in ("weight", "verdict", "pruned", "controls (worst)"))
    for c in candidates:
        ev = c.get("evidence") or {}
        n = len(ev.get("controls", []))
        worst = ci_text(c.get("control_ratio"), c.get("control_ratio_ci95"))
        t.add_row(f"{c['layer']}[{c['row']},{c['col']}]", f"{c['value']:.3g}", compact(c.get("contribution")),
                  compact(c.get("out_act")), share_text(c.get("share")), prompts_text(c),
                  ci_text(c.get("ppl_ratio"), c.get("ppl_ratio_ci95")),
                  f"{n}: {worst}" if n else worst,
                  ci_text(c.get("sa_ratio"), c.get("sa_ratio_ci95")), c.get("role") or "—",
                  str((ev.get("treatment") or {}).get("eval_tokens") or "—"),
                  verdict_text(c.get("verdict"), c.get("small_effect")))
    return t


def controls_table(candidates: list[dict], title: str = "each candidate's controls (matched on what the claim is about)") -> Table:
    """Every control of every weight claim, its magnitude beside the candidate's."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("candidate", "magnitude", "control", "its magnitude", "pruned", "tokens", "stopped"):
        t.add_column(col, justify="right")
    for c in candidates:
        ev = c.get("evidence") or {}
        for k in ev.get("controls", []):
            t.add_row(f"{c['layer']}[{c['row']},{c['col']}]", compact(ev["treatment"]["magnitude"]),
                      k["what"].removeprefix("prune "), compact(k["magnitude"]), ci_text(k["ratio"], k["ratio_ci95"]),
                      str(k["eval_tokens"]), k["stopped"])
    return t


def verdict_text(verdict: str | None, small_effect: bool | None = None) -> Text:
    """The verdict's label; "below threshold" with "(small effect)" where its interval excludes 1."""
    if verdict is None:
        return Text("unmeasured", style="yellow")
    from swtui.core.verdicts import Verdict

    v = Verdict(verdict)
    return Text(v.value + (" (small effect)" if small_effect else ""),
                style={"strong": "bold red", "muted": "dim", "doubt": "yellow"}[v.emphasis])


def channel_table(channels: list[dict], title: str = "residual channels: massive activations and their writers") -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("ch", "massive", "writers (share of the peak; − cancels)", "activation", "carriers pruned",
                "their controls (worst)", "zeroed at massive positions", "energy-matched controls (worst)",
                "zeroed at every token", "its controls (worst)", "verdict"):
        t.add_column(col, justify="right")
    for g in channels:
        writers = ", ".join(f"{w['layer']}[{w['row']},{w['col']}] {w['share']:+.2f}" for w in g["writers"]) or \
            ", ".join(f"{m[0]}[{m[1]},{m[2]}]" for m in g["members"])
        massive = (f"{compact(abs(g['peak']))} @L{g['peak_layer']}, from L{g['first_layer']}, "
                   f"{g['persist_layers']} layers" if g["massive"] else "no")
        a = g["activation"]
        activation = f"{compact(a['before'])}→{compact(a['after_carriers_pruned'])} ({100 * a['remaining']:.0f}%)"
        ab = g["ablations"]
        control = "—" if ab["control_channel"] is None else \
            f"ch{ab['control_channel']}: {ci_text(ab['control'], ab['control_ci95'])}"
        t.add_row(str(g["channel"]), massive, writers, activation,
                  ab.get("pruned_together_note") or ci_text(ab["pruned_together"], ab["pruned_together_ci95"]),
                  ci_text(ab["pruned_together_control"], ab["pruned_together_control_ci95"]),
                  ci_text(ab["positions_zeroed"], ab["positions_zeroed_ci95"])
                  + ("" if ab.get("positions_zeroed_share") is None else f" at {100 * ab['positions_zeroed_share']:.0f}%"
                     " of positions"), control,
                  ci_text(ab["write_zeroed"], ab["write_zeroed_ci95"]),
                  ci_text(ab["write_zeroed_control"], ab["write_zeroed_control_ci95"]), verdict_text(g["verdict"]))
    return t


def comparison_table(base: dict, edited: dict, title: str = "baseline vs edited") -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    t.add_column("metric")
    t.add_column("baseline", justify="right")
    t.add_column("edited", justify="right")
    t.add_column("ratio", justify="right")
    for key, label in (("perplexity", "perplexity"), ("stopword_mass", "stopword mass")):
        b, e = base.get(key), edited.get(key)
        ratio = f"{e / b:.2f}×" if b and e is not None else "—"
        t.add_row(label, fmt(b, 3), fmt(e, 3), ratio)
    return t


def stopword_shift_table(rows: list[dict], title: str) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    t.add_column("token")
    t.add_column("baseline p", justify="right")
    t.add_column("edited p", justify="right")
    t.add_column("change", justify="right")
    for r in rows:
        ratio = r["current"] / r["base"] if r["base"] > 0 else float("inf")
        style = "red" if ratio > 1.5 else ("green" if ratio < 0.67 else None)
        t.add_row(repr(r["token"]), f"{r['base']:.4f}", f"{r['current']:.4f}", f"{ratio:.2f}×", style=style)
    return t


def generation_table(prompt: str, base: str, edited: str) -> Table:
    t = Table(title=f"greedy generation: {prompt!r}", title_justify="left", header_style="bold", show_lines=True)
    t.add_column("baseline", ratio=1)
    t.add_column("edited", ratio=1)
    t.add_row(Text(base), Text(edited))
    return t
