"""The headless subcommands: scan, ablate (quant, export, open, report live beside them)."""

from __future__ import annotations

import contextlib
import json
import sys

from rich.console import Console

from swtui.core.errors import UserInputError

err_console = Console(stderr=True)
out_console = Console()


@contextlib.contextmanager
def progress_display(enabled: bool = True):
    """Yields a ProgressFn drawing a Rich progress bar on stderr."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not enabled or not err_console.is_terminal:
        def plain(stage: str, fraction: float | None) -> None:
            if fraction is None or fraction in (0.0,):
                err_console.print(f"[dim]… {stage}[/dim]", highlight=False)
        yield plain
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as prog:
        task = prog.add_task("starting", total=None)

        def update(stage: str, fraction: float | None) -> None:
            prog.update(task, description=stage, total=None if fraction is None else 1.0,
                        completed=fraction or 0.0)
        yield update


def load_options(args):
    from swtui.core.loading import LoadOptions, parse_max_memory

    return LoadOptions(device=args.device, dtype=args.dtype, device_map=args.device_map, revision=args.revision,
                       trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle,
                       down_proj=args.down_proj, max_memory=parse_max_memory(getattr(args, "max_memory", None)),
                       offload_folder=getattr(args, "offload_folder", None))


def open_session(args, progress):
    from swtui.core.loading import load_model
    from swtui.core.session import Session

    loaded = load_model(getattr(args, "model", None), load_options(args), progress)
    return Session(loaded, down_proj=args.down_proj)


def model_info(session) -> dict:
    lm = session.loaded
    return {"name": lm.name, "source": lm.source, "kind": lm.kind, "arch": session.adapter.arch,
            "layers": session.adapter.n_layers, "params": lm.n_params, "device": str(session.device),
            "dtype": lm.dtype, "revision": lm.revision, "file_sha256": lm.file_hash}


def emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, default=float) + "\n")


def dispatch(command: str, args) -> int:
    if command == "scan":
        return cmd_scan(args)
    if command == "ablate":
        return cmd_ablate(args)
    if command in ("quant", "quant-sweep"):
        from swtui.cli_quant import cmd_quant, cmd_quant_sweep

        return cmd_quant(args) if command == "quant" else cmd_quant_sweep(args)
    from swtui.cli_snapshot import cmd_export, cmd_open, cmd_report

    return {"export": cmd_export, "open": cmd_open, "report": cmd_report}[command](args)


def detect_options(args):
    from swtui.core.detect import DEFAULT_PROMPT, DetectOptions

    if args.ratio <= 0 or args.max_rounds < 1:
        raise UserInputError("--ratio must be > 0 and --max-rounds ≥ 1")
    return DetectOptions(prompt=args.prompt or DEFAULT_PROMPT, ratio=args.ratio, min_abs=args.min_abs,
                         max_rounds=args.max_rounds, impact=not args.no_impact,
                         impact_threshold=args.impact_threshold)


def scan_report(session, detection) -> dict:
    from swtui.core.catalog import label_matches

    matches = label_matches(session.loaded.name, [c.key for c in detection.candidates])
    cands = []
    for c in detection.candidates:
        c.catalog = matches.get(c.key)
        d = c.to_dict()
        d["name"] = session.adapter.coord_label(*c.key)
        cands.append(d)
    return {
        "model": model_info(session),
        "prompt": detection.probe.prompt,
        "tokens": detection.probe.tokens,
        "threshold": detection.threshold,
        "rule": f"out_max >= {detection.options.ratio:g} x median(out_max over layers), >= {detection.options.min_abs:g}",
        "layers": [s.to_dict() for s in detection.probe.layers],
        "spike_layers": detection.spike_layers(),
        "candidates": cands,
        "super_weights": [c for c in cands if c["is_super"] is not False],
        "rounds": detection.rounds,
        "stop_reason": detection.stop_reason,
    }


def cmd_scan(args) -> int:
    from swtui.core.detect import detect
    from swtui.render import layer_table, super_weight_table

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
    for c in report["candidates"]:
        if c.get("catalog"):
            out_console.print(f"[cyan]{c['name']} is in the catalog: {c['catalog']}[/cyan]")
    out_console.print(f"[dim]stopped: {report['stop_reason']}[/dim]")
    return 0


def ablate_report(session, args, notices: list) -> dict:
    """Baseline vs current metrics for the session's present edits."""
    from swtui.core import metrics

    text = metrics.eval_text(args.eval_file)
    ppl = metrics.perplexity(session, text)
    sw = metrics.stopword_mass(session)
    gen = metrics.generate(session, args.gen_prompt, args.max_new_tokens)
    side = {v: {"perplexity": ppl[v], "stopword_mass": sw.mass[v], "generation": gen[v]} for v in ("base", "current")}
    return {
        "model": model_info(session),
        "edits": session.ledger.summary(),
        "sa_restored": [list(k) for k in sorted(session.sa_restore)],
        "batched_ab": session.batchable,
        "ab_mode": session.ab_mode,
        "prompt": args.gen_prompt,
        "baseline": side["base"],
        "edited": side["current"],
        "stopwords": sw.to_dict(),
        "notices": notices,
    }


def apply_ablation_args(session, args, notices: list) -> None:
    from swtui.core.ablation import enable_sa_restore, parse_coord, parse_scale, prune_nonsw

    prunes = [parse_coord(p) for p in args.prune]
    scales = [parse_scale(s) for s in args.scale]
    if not prunes and not scales and not args.nonsw_control:
        raise UserInputError("nothing to ablate: give --prune, --scale or --nonsw-control")
    for coord in prunes + [c for c, _ in scales]:
        session.adapter.check_coords(*coord)
    for coord in prunes:
        session.name_super_weight(*coord, source="user")
        if args.restore_sa:
            mag = enable_sa_restore(session, coord, args.sa_prompt)
            notices.append(f"super activation of {coord} measured at {mag:.1f} on {args.sa_prompt!r}")
        session.ledger.prune(*coord)
    for coord, factor in scales:
        session.ledger.scale(*coord, factor)
    if args.nonsw_control:
        keep = {sw.key for sw in session.super_weights} | {c for c, _ in scales}
        ctl = prune_nonsw(session, args.nonsw_control, keep)
        notices.append(f"non-SW control: zeroed the {ctl.k} largest other weights (|w| ≥ {ctl.min_abs:.3f})")


def cmd_ablate(args) -> int:
    from swtui.core.edits import weights_hash
    from swtui.render import comparison_table, generation_table, stopword_shift_table

    notices: list[str] = []
    with progress_display() as progress:
        session = open_session(args, progress)
        before = weights_hash(session.model)
        apply_ablation_args(session, args, notices)
        progress("measuring baseline vs edited", None)
        report = ablate_report(session, args, notices)
        session.reset()
        report["restored_exactly"] = weights_hash(session.model) == before
    if args.json:
        emit_json(report)
        return 0
    for n in notices:
        out_console.print(f"[dim]{n}[/dim]")
    out_console.print(comparison_table(report["baseline"], report["edited"]))
    out_console.print(stopword_shift_table(report["stopwords"]["top_stopwords"], "stopwords that moved"))
    out_console.print(stopword_shift_table(report["stopwords"]["top_other"], "other tokens that moved"))
    out_console.print(generation_table(report["prompt"], report["baseline"]["generation"], report["edited"]["generation"]))
    out_console.print(f"restore-all gives the original weights: {report['restored_exactly']}")
    return 0
