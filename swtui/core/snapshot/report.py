"""The Markdown report of a snapshot: key numbers and tables that read well on a code host."""

from __future__ import annotations

from swtui.core.verdicts import Verdict


def _tokens(s: dict):
    treatment = (s.get("evidence") or {}).get("treatment") or {}
    return treatment.get("eval_tokens")


def _interval(value, ci, tokens) -> str:
    if value is None:
        return "—"
    lo, hi = ci if ci else (None, None)
    text = f"×{value:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else "")
    return text + (f", {tokens}" if tokens else "")


def _worst_control(s: dict) -> str:
    controls = (s.get("evidence") or {}).get("controls") or []
    if not controls:
        return _interval(s.get("control_ratio"), s.get("control_ratio_ci95"), None)
    worst = max((c for c in controls if c.get("ratio") is not None), key=lambda c: c["ratio"], default=None)
    return "—" if worst is None else f"{_interval(worst['ratio'], worst.get('ratio_ci95'), None)} (of {len(controls)})"


def _num(v, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def _table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |")
    return "\n".join(out)


def _source_quant(sq: dict | None) -> str:
    """How the source stored its weights, and the warning that goes with a quantized one."""
    if not sq:
        return "not recorded"
    if not sq.get("quantized"):
        return f"{sq.get('down_type')} ({sq.get('format')}): not quantized"
    return (f"**{sq['down_type']}** ({sq['format']}, {sq['bits']}-bit, blocks of {sq.get('block') or '—'}): "
            "every weight already sits on this grid; quantization at as many bits or more is confounded by it")


def markdown_report(data: dict, has_svg: bool = False) -> str:
    m = data["model"]
    lines = [f"# swtui findings: {m['name']}", "",
             f"*{data['created']}* · {m.get('arch')} · {m.get('layers')} layers · {_num(m.get('params', 0) / 1e6, 1)}M "
             f"parameters · {m.get('dtype')} on {m.get('device')}", ""]
    if has_svg:
        lines += ["![screen at export time](screen.svg)", ""]
    lines += ["## Model", "", _table(["field", "value"], [
        ["source", f"`{m['source']}`"], ["revision", m.get("revision") or "—"],
        ["weights sha256", f"`{m['weights_sha256']}`"], ["file sha256", f"`{m.get('file_sha256') or '—'}`"],
        ["source quantization", _source_quant(m.get("source_quant"))]]), ""]
    sws = data["super_weights"]
    lines += ["## Super weights", ""]
    if sws:
        rows = []
        for s in sws:
            ratio = s["ppl_pruned"] / s["ppl_base"] if s.get("ppl_base") and s.get("ppl_pruned") else None
            v = Verdict.of(s.get("verdict")) or {True: Verdict.SUPER, False: Verdict.BELOW, None: None}[s.get("is_super")]
            verdict = "not measured" if v is None else f"**{v}**" if v.emphasis == "strong" else str(v)
            rows.append([f"`layers.{s['layer']}.down_proj[{s['row']}, {s['col']}]`", _num(s.get("value"), 4),
                         _num(s.get("zscore"), 1), _num(s.get("out_act"), 1), _num(s.get("persist_layers")),
                         f"{_num(s.get('ppl_base'))} → {_num(s.get('ppl_pruned'))}" + (f" ({ratio:.2f}×)" if ratio else ""),
                         _interval(s.get("ppl_ratio"), s.get("ppl_ratio_ci95"), _tokens(s)),
                         _worst_control(s), verdict, s.get("label") or ""])
        lines += [_table(["weight (row, col)", "value", "z", "super act.", "resid. max layers",
                          "ppl when pruned", "ratio [interval], tokens", "worst control", "verdict", "label"], rows), ""]
        lines += ["Ratios are perplexity pruned / unpruned on the windows each arm was measured on, with "
                  "the evaluation plan's intervals (95% for all of them together); a weight's controls are the "
                  "5 weights nearest to it in |x·w|, the worst of them shown.", ""]
    else:
        lines += ["None named.", ""]
    lines += ["## State at export", ""]
    edits = data["edits"]
    lines.append("Edits: " + (", ".join(
        f"{e['op']} ({e['layer']}, {e['row']}, {e['col']})" + (f" ×{e['factor']:g}" if e["op"] == "scale" else "")
        for e in edits) if edits else "none") + ".")
    lines.append("Super activation restored for: " + (", ".join(str(tuple(k)) for k in data["sa_restored"]) or "none") + ".")
    writes = data.get("zero_writes") or []
    lines.append("MLP writes zeroed (layer, channel): " + (", ".join(str(tuple(w)) for w in writes) or "none") + ".")
    masks = data.get("zero_masks") or {}
    lines.append(f"Control masks ({sum(len(idx) for idx in masks.values())} weights zeroed): "
                 + (", ".join(f"`{name}` ×{len(idx)}" for name, idx in masks.items()) or "none") + ".")
    q = data.get("quantization")
    lines += [f"Quantization: {q if q else 'full precision'}.", ""]
    metrics = data.get("metrics") or {}
    ppl, sw, gen = metrics.get("perplexity") or {}, metrics.get("stopwords") or {}, metrics.get("generation") or {}
    if ppl or sw:
        rows = []
        if ppl:
            rows.append(["perplexity (bundled text)", _num(ppl.get("base")), _num(ppl.get("current")),
                         f"{ppl['current'] / ppl['base']:.2f}×" if ppl.get("base") else "—"])
        mass = sw.get("mass") or {}
        if mass:
            rows.append(["stopword probability mass", _num(mass.get("base"), 3), _num(mass.get("current"), 3),
                         f"{mass['current'] / mass['base']:.2f}×" if mass.get("base") else "—"])
        lines += ["## Baseline vs current", "", _table(["metric", "baseline", "current", "ratio"], rows), ""]
        movers = (sw.get("top_stopwords") or []) + (sw.get("top_other") or [])
        if movers:
            movers = sorted(movers, key=lambda r: -abs(r["current"] - r["base"]))[:10]
            lines += ["Tokens that moved most (mean next-token probability over the prompt set):", "",
                      _table(["token", "baseline", "current"],
                             [[f"`{r['token']!r}`", f"{r['base']:.4f}", f"{r['current']:.4f}"] for r in movers]), ""]
    if gen:
        prompt = data["prompts"].get("generation")
        lines += [f"## Greedy generation: “{prompt}”", "",
                  _table(["baseline", "current"], [[gen.get("base", ""), gen.get("current", "")]]), ""]
    lines += _comparison_lines(data.get("comparison"))
    lines += _sweep_lines(data.get("sweeps") or {})
    layers = data["probe"].get("layers") or []
    if layers:
        thr = data["probe"].get("threshold")
        lines += [f"## Per-layer down_proj spikes (prompt “{data['prompts'].get('probe')}”"
                  + (f", threshold {thr:,.1f})" if thr else ")"), "",
                  _table(["layer", "max |in|", "in ch (col)", "max |out|", "out ch (row)", "max |resid|", "resid ch"],
                         [[("**%d**" % s["layer"]) if thr and s["out_max"] >= thr else s["layer"],
                           _num(s["in_max"], 1), s["in_channel"], _num(s["out_max"], 1), s["out_channel"],
                           _num(s["resid_max"], 1), s["resid_channel"]] for s in layers]), ""]
    v = data["versions"]
    lines += ["## Versions", "", ", ".join(f"{k} {val}" for k, val in v.items() if val), ""]
    return "\n".join(lines)


def _comparison_lines(comparison: dict | None) -> list[str]:
    if not comparison or not comparison.get("results"):
        return []
    from swtui.core.quant.session import describe_config

    results = comparison["results"]
    base = results.get("baseline", {})
    what = {v["name"]: describe_config(v.get("config")) + ("" if v.get("with_edits", True) else ", unedited")
            for v in comparison.get("variants", [])}
    rows = []
    for name, m in results.items():
        ratio = f"{m['perplexity'] / base['perplexity']:.3g}×" if base.get("perplexity") else "—"
        rows.append([name, what.get(name, "the unedited model"), _num(m["perplexity"]), ratio,
                     _num(m["stopword_mass"], 3), (m.get("generation") or "").replace("|", "\\|")])
    return ["## Quantization variants side by side", "",
            _table(["variant", "configuration", "perplexity", "vs baseline", "stopword mass", "generation"], rows), ""]


def _ci(value, ci) -> str:
    if value is None:
        return "—"
    return f"×{_num(value, 3)}" + (f" [{_num(ci[0], 3)}, {_num(ci[1], 3)}]" if ci and None not in ci else "")


def _sweep_lines(sweeps: dict) -> list[str]:
    lines: list[str] = []
    scale = sweeps.get("scale")
    if scale and scale.get("rows"):
        meta = scale["meta"]
        lines += [f"## Scale sweep of W{meta['super_weight']} = {meta['value']:.4g}", "",
                  _table(["factor", "perplexity", "vs ×1 [95%]", "stopword mass"],
                         [[f"×{r['factor']:g}", _num(r["perplexity"], 3), _ci(r.get("ratio"), r.get("ratio_ci95")),
                           _num(r["stopword_mass"], 4)] for r in scale["rows"]]), ""]
    quant = sweeps.get("quant")
    if quant and quant.get("rows"):
        meta = quant["meta"]
        lines += [f"## W{meta['bits']} RTN by block size (clip z{meta['clip_z']:g}; full precision "
                  f"{_num(meta.get('baseline_perplexity'))}; held out {meta.get('held_out', meta.get('super_weights'))})",
                  ""]
        if meta.get("confound"):
            lines += [f"> **Source grid:** {meta['confound']}.", ""]
        lines += [_table(["block", "naive", "keep SW", "clip", "clip + keep SW (SW-aware)", "SW-aware / naive [95%]",
                          "source grid"],
                         [[r["block"], _num(r["naive"]), _num(r["keep_sw"]), _num(r["clip"]), _num(r["sw_aware"]),
                           _ci(r.get("sw_aware_vs_naive"), r.get("sw_aware_vs_naive_ci95")),
                           "—" if not r.get("confound") else
                           "reproduced" if "reproduces" in r["confound"] else "confounded"]
                          for r in quant["rows"]]), ""]
    return lines
