"""`swtui ablate`: prune / scale / restore the super activation, baseline vs edited."""

from __future__ import annotations

from swtui.cli.common import emit_json, model_info, open_session, out_console, progress_display
from swtui.core.errors import UserInputError


def ablate_report(session, args, notices: list) -> dict:
    """Baseline vs current metrics for the session's present edits."""
    from swtui.core import metrics

    m = metrics.measure(session, args.gen_prompt, args.max_new_tokens, metrics.eval_text(args.eval_file))
    return {
        "model": model_info(session),
        "edits": session.ledger.summary(),
        "sa_restored": [list(k) for k in sorted(session.sa_restore)],
        "zero_writes": [list(k) for k in sorted(session.zero_writes)],
        "batched_ab": session.batchable,
        "ab_mode": session.ab_mode,
        "prompt": args.gen_prompt,
        "baseline": m["base"].to_dict(),
        "edited": m["current"].to_dict(),
        "stopwords": m.stopwords.to_dict(),
        "notices": notices,
    }


def parse_layer_channel(text: str) -> tuple[int, int]:
    """'11,507' -> (11, 507)."""
    parts = [p.strip() for p in (text or "").split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UserInputError(f"--zero-write takes LAYER,CHANNEL (two non-negative integers), not {text!r}")
    return int(parts[0]), int(parts[1])


def apply_ablation_args(session, args, notices: list) -> None:
    from swtui.core.ablation import enable_sa_restore, parse_coord, parse_scale, prune_nonsw

    prunes = [parse_coord(p) for p in args.prune]
    scales = [parse_scale(s) for s in args.scale]
    writes = [parse_layer_channel(w) for w in getattr(args, "zero_write", [])]
    if not prunes and not scales and not args.nonsw_control and not writes:
        raise UserInputError("nothing to ablate: give --prune, --scale, --zero-write or --nonsw-control")
    for layer, channel in writes:
        session.set_zero_write(layer, channel, True)
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
    from swtui.cli.render import comparison_table, generation_table, stopword_shift_table

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
