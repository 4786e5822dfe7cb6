"""`swtui scan`: per-layer spikes and the detected super weights."""

from __future__ import annotations

from swtui.cli.common import detect_options, emit_json, model_info, open_session, out_console, progress_display, stream_json


def scan_report(session, detection) -> dict:
    from swtui.core.detection.catalog import label_matches
    from swtui.core.detection.findings import candidate_json, judged_json
    from swtui.core.verdicts import GROUP, SUPER

    matches = label_matches(session.loaded.name, [c.key for c in detection.candidates])
    cands = []
    for c in detection.candidates:
        c.catalog = matches.get(c.key)
        cands.append(candidate_json(c, session.adapter.coord_label))
    return {
        "model": model_info(session),
        "prompt": detection.probe.prompt,
        "tokens": detection.probe.tokens,
        "threshold": detection.threshold,
        "rule": detection.rule.text,
        "in_threshold": detection.rule.in_threshold,
        **judged_json(detection),  # impact_threshold, eval_tokens, interval_method, channel_rule, channels
        "layers": [s.to_dict() for s in detection.probe.layers],
        "spike_layers": detection.spike_layers(),
        "candidates": cands,
        "super_weights": [c for c in cands if c["verdict"] in (SUPER, GROUP)],
        "rounds": detection.rounds,
        "significance_floor": detection.significance_floor,
        "stop_reason": detection.stop_reason,
        **super_experts_report(detection),
        **stream_report(session, detection),
    }


def stream_report(session, detection) -> dict:
    """`stream` for a streamed scan: what was read, the plan's passes, the most layers alive at once."""
    runner = getattr(detection.impact, "runner", None)
    return stream_json(session, [{"run": r, "what": w, "look": k} for r, w, k in getattr(runner, "log", [])])


def super_experts_report(detection) -> dict:
    """`super_experts` for a model of fused experts (absent for a dense one)."""
    if detection.super_experts is None:
        return {}
    from swtui.core.detection.experts import super_experts_json

    return {"super_experts": super_experts_json(detection.super_experts)}


def cmd_scan(args) -> int:
    from swtui.core.detection.detect import detect
    from swtui.cli.render import channel_table, controls_table, layer_table, super_weight_table

    opts = detect_options(args)
    with progress_display() as progress:
        session = open_session(args, progress)
        detection = detect(session, opts, progress)
    report = scan_report(session, detection)
    if args.json:
        emit_json(report)
        return 0
    info = report["model"]
    out_console.print(f"[bold]{info['name']}[/bold]  {info['arch']}, {info['layers']} layers, "
                      f"{info['params'] / 1e6:.1f}M params, {info['device']}, {info['dtype']}")
    out_console.print(f"prompt: {report['prompt']!r}   spike rule: {report['rule']} = {report['threshold']:.1f}")
    out_console.print(layer_table(report["layers"], report["threshold"]))
    out_console.print(super_weight_table(report["candidates"]))
    if any(c.get("evidence") for c in report["candidates"]):
        out_console.print(controls_table(report["candidates"]))
    if report["channels"]:
        out_console.print(channel_table(report["channels"]))
    if report["impact_threshold"] is not None:
        plan = report.get("plan") or {}
        corpus = plan.get("corpus") or {}
        out_console.print(f"[dim]verdicts: each claim's interval against the impact threshold ×{report['impact_threshold']:g} "
                          f"and beside its controls, on up to {report['eval_tokens']} tokens of {corpus.get('name', '?')} "
                          f"({corpus.get('windows', '?')} windows of {corpus.get('window_tokens', '?')} tokens, "
                          f"{corpus.get('documents', '?')} documents); {report['interval_method']}; "
                          f"massive channel: {report['channel_rule']}[/dim]")
    for line in super_expert_lines(report.get("super_experts")):
        out_console.print(line)
    for c in report["candidates"]:
        if c.get("catalog"):
            out_console.print(f"[cyan]{c['name']} is in the catalog: {c['catalog']}[/cyan]")
    out_console.print(f"[dim]stopped: {report['stop_reason']}[/dim]")
    return 0


def super_expert_lines(found: dict | None) -> list[str]:
    """The super experts in words: each with its numbers, its interval and its control's."""
    from swtui.core.evidence.stats import Ratio
    from swtui.core.model.moe import expert_label

    if not found:
        return []
    cal = found.get("calibration") or {}
    lines = [f"[bold]super experts[/bold] ({found['rule']}): on {cal.get('source', '?')} ({cal.get('tokens', '?')} "
             f"tokens), {found.get('rows_ranked', '?')} experts of layers 0–{(found.get('layers_ranked') or 0) - 1} "
             f"ranked; 99.5th percentile {found['percentile'] or 0:.4g}, largest {found['overall_max'] or 0:.4g}"]
    for e in found["experts"]:
        def text(name):
            v, ci = e[name], e[f"{name}_ci95"]
            return "—" if v is None else Ratio(v, ci[0], ci[1], 0).text() if ci else f"×{v:.3g}"
        lines.append(f"  layer {e['layer']} {expert_label(e['expert'])}: max |out| {e['out_max']:.4g} on channel "
                     f"{e['out_channel']} (token {e['out_token']}), {e['routed_tokens']} tokens routed; pruned "
                     f"{text('ppl_ratio')}, control expert {e['control_expert']} {text('control_ratio')}: "
                     f"{e['verdict'] or 'not judged'}")
    return lines
