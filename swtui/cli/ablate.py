"""`swtui ablate`: prune / scale / restore the super activation, and the non-super-weight control,
each an arm measured against the same baseline with a paired 95% interval."""

from __future__ import annotations

from swtui.cli.common import emit_json, model_info, open_session, out_console, progress_display, stream_json
from swtui.core.errors import UserInputError


def parse_layer_channel(text: str) -> tuple[int, int]:
    """'11,507' -> (11, 507)."""
    parts = [p.strip() for p in (text or "").split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UserInputError(f"--zero-write takes LAYER,CHANNEL (two non-negative integers), not {text!r}")
    return int(parts[0]), int(parts[1])


def _experts(args) -> frozenset:
    """--prune-expert L,E (repeatable) -> {(layer, expert)}."""
    out = set()
    for text in getattr(args, "prune_expert", None) or []:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise UserInputError(f"--prune-expert takes LAYER,EXPERT (two non-negative integers), not {text!r}")
        out.add((int(parts[0]), int(parts[1])))
    return frozenset(out)


def _control_args(args) -> tuple[int | None, float | None]:
    """(K, fraction) of the control; at most one of them (both None: no control)."""
    k, fraction = getattr(args, "nonsw_control", None), getattr(args, "nonsw_control_fraction", None)
    if k is not None and fraction is not None:
        raise UserInputError("give --nonsw-control K (top-K over the model) or --nonsw-control-fraction F "
                             "(top F of each decoder linear), not both")
    return k, fraction


def _treatment(args):
    from swtui.core.edits.ablation import parse_coord, parse_scale

    return ([parse_coord(p) for p in args.prune], [parse_scale(s) for s in args.scale],
            [parse_layer_channel(w) for w in getattr(args, "zero_write", [])])


def apply_treatment(session, args, notices: list) -> None:
    """The treatment arm: --prune, --scale, --restore-sa, --zero-write, on the session's state."""
    from swtui.core.edits.ablation import enable_sa_restore

    prunes, scales, writes = _treatment(args)
    for layer, channel in writes:
        session.set_zero_write(layer, channel, True)
    if _experts(args):  # a pruned expert is an edit of the ledger like any other
        session.ledger.set_pruned_experts(session.ledger.pruned_experts | _experts(args))
    for coord in prunes + [c for c, _ in scales]:
        session.adapter.check_coords(*coord)
    for coord in prunes:
        session.name_super_weight(*coord[:3], source="user", expert=coord[3] if len(coord) > 3 else None)
        if args.restore_sa:
            mag = enable_sa_restore(session, coord, args.sa_prompt)
            notices.append(f"super activation of {coord} measured at {mag:.1f} on {args.sa_prompt!r}")
        session.ledger.prune(*coord)
    for coord, factor in scales:
        session.ledger.scale(*coord, factor)


def control_detection(session, progress=None):
    """Detection for the control to spare: the same rounds and channels as `scan`, without the
    perplexity check (only which weights detection names matters here)."""
    from swtui.core.detection.detect import DetectOptions, detect

    if progress:
        progress("detecting super weights, groups and channel writers (the control spares them)", None)
    return detect(session, DetectOptions(impact=False), progress)


def apply_control(session, args, notices: list, detection=None, progress=None):
    """The control arm: zero the largest non-super weights (a zero mask in the ledger), sparing
    every weight detection names (run here unless given) and the treatment's own weights."""
    from swtui.core.edits.ablation import detection_exclusions, prune_nonsw

    k, fraction = _control_args(args)
    if detection is None:
        detection = control_detection(session, progress)
    prunes, scales, _ = _treatment(args)
    keep = detection_exclusions(detection) | set(prunes) | {c for c, _ in scales}
    ctl = prune_nonsw(session, k, keep, fraction=fraction)
    notices.append(f"non-SW control: zeroed {len(ctl.pruned)} weights, the {ctl.selection} (|w| ≥ {ctl.min_abs:.3f}), "
                   f"sparing {len(keep)} weight(s) detection or the treatment names")
    return ctl


def apply_ablation_args(session, args, notices: list, detection=None, progress=None):
    """Treatment and control on one state (what `export` records: the control as zero masks).
    Returns the control (None without one)."""
    prunes, scales, writes = _treatment(args)
    k, fraction = _control_args(args)
    if not prunes and not scales and k is None and fraction is None and not writes and not _experts(args):
        raise UserInputError("nothing to ablate: give --prune, --scale, --zero-write, --prune-expert, --nonsw-control "
                             "or --nonsw-control-fraction")
    ctl = None
    if k is not None or fraction is not None:  # chosen on the pristine model, before the treatment
        ctl = apply_control(session, args, notices, detection, progress)
    apply_treatment(session, args, notices)
    return ctl


def _window_sizes(session, text) -> list[int] | None:
    """Targets per measurement window (the cluster bootstrap's units); None for a user's text."""
    if text is not None:
        return None
    from swtui.core.evidence.metrics import measurement_windows

    return [int(w.shape[-1]) - 1 for w in measurement_windows(session)]


def _ratio(base, arm, windows):
    from swtui.core.evidence import stats as evidence

    if windows is None:
        return evidence.paired_ratio(base, arm)
    return evidence.window_ratio(list(base.split(windows)), list(arm.split(windows)))


def run_ablation(session, args, notices: list, progress=None) -> dict:
    """Each arm against the same baseline, on the same tokens: the treatment (--prune, --scale,
    --zero-write, --restore-sa) and the non-SW control, separately, each with its paired ratio."""
    from swtui.core.evidence import stats as evidence, metrics
    from swtui.core.evidence.stats import perplexity_of
    from swtui.core.engine.protocol import Metrics
    from swtui.core.evidence.arm_states import ArmPlan, ArmState, generate_arms, measure_arms

    prunes, scales, writes = _treatment(args)
    k, fraction = _control_args(args)
    has_treatment = bool(prunes or scales or writes or _experts(args))
    has_control = k is not None or fraction is not None
    if not has_treatment and not has_control:
        raise UserInputError("nothing to ablate: give --prune, --scale, --zero-write, --prune-expert, --nonsw-control "
                             "or --nonsw-control-fraction")
    text = metrics.eval_text(args.eval_file) if args.eval_file else None
    plans, ctl = [], None
    if has_control:  # chosen on the pristine model, before the treatment
        ctl = apply_control(session, args, notices, None, progress)
        plans.append(ArmPlan("control", ArmState.of(session), ("current",) if has_treatment else ("base", "current")))
        session.ledger.set_zeros({})
    if has_treatment:
        apply_treatment(session, args, notices)
        plans.append(ArmPlan("treatment", ArmState.of(session), ("base", "current")))
    if progress:
        progress(f"measuring the {' and '.join(p.name for p in plans)} arm{'s' * (len(plans) > 1)}", None)
    figures, passes = measure_arms(session, plans, text)
    texts, generated = generate_arms(session, plans, args.gen_prompt, args.max_new_tokens)
    arms: dict = {}
    for plan in plans:
        got, sw = figures[plan.name], figures[plan.name].stopwords
        m = {v: Metrics(perplexity_of(got.losses[v]), sw.mass[v], texts[plan.name].get(v)) for v in plan.variants}
        if "base" in plan.variants:
            base_losses, base_metrics, stopwords = got.losses["base"], m["base"], sw
        arms[plan.name] = {"metrics": m["current"].to_dict(), "ab_mode": got.ab_mode, "losses": got.losses["current"]}
    if ctl is not None:
        arms["control"].update(ctl.to_json())
    if has_treatment:  # the session holds the treatment's state again
        arms["treatment"].update({"edits": session.ledger.summary(),
                                  "sa_restored": [list(k) for k in sorted(session.sa_restore)],
                                  "zero_writes": [list(k) for k in sorted(session.zero_writes)],
                                  "pruned_experts": [list(k) for k in sorted(session.ledger.pruned_experts)]})
    windows = _window_sizes(session, text)
    for arm in arms.values():
        arm.update(evidence.fields("ratio", _ratio(base_losses, arm.pop("losses"), windows)))
    treatment, control = arms.get("treatment"), arms.get("control")
    return {
        "model": model_info(session),
        "edits": treatment["edits"] if treatment else [],
        "sa_restored": treatment["sa_restored"] if treatment else [],
        "zero_writes": treatment["zero_writes"] if treatment else [],
        "batched_ab": treatment["ab_mode"] == "batched" if treatment else False,
        "ab_mode": (treatment or control)["ab_mode"],
        "prompt": args.gen_prompt,
        "baseline": base_metrics.to_dict(),
        "edited": (treatment or control)["metrics"],  # the treatment's; the control's when it is the only arm
        "treatment": treatment,
        "control": control,
        "eval_tokens": int(base_losses.numel()),
        "interval_method": evidence.WINDOW_METHOD.replace("at the level the plan's error spending sets", "95%")
        if windows else evidence.METHOD,
        "eval_text": "bundled WikiText-2 excerpt, held-out documents (no verdict is judged on them)" if text is None
        else args.eval_file,
        "stopwords": stopwords.to_dict(),
        "notices": notices,
        **stream_json(session, [{"what": "arms", "look": 0}] * passes + [{"what": "generation", "steps": generated}]
                      if session.streamed else []),
    }


def arms_table(report: dict):
    from rich.table import Table

    from swtui.cli.render import ci_text

    t = Table(title=f"each arm against the same baseline (ppl {report['baseline']['perplexity']:.2f}) on the same "
                    f"{report['eval_tokens']} tokens ({report['eval_text']}), 95% intervals", title_justify="left")
    for col in ("arm", "what", "perplexity", "vs baseline", "stopword mass"):
        t.add_column(col, justify="right" if col not in ("arm", "what") else "left")
    treatment, control = report["treatment"], report["control"]
    if treatment:
        what = ", ".join(f"{e['op']}{' ×%g' % e['factor'] if e['op'] == 'scale' else ''} "
                         f"({e['layer']},{e['row']},{e['col']}{',e%d' % e['expert'] if 'expert' in e else ''})"
                         for e in treatment["edits"])
        if treatment.get("pruned_experts"):
            what += ("; " if what else "") + "experts pruned " + ", ".join(
                f"L{layer} e{e}" for layer, e in treatment["pruned_experts"])
        what = what or "—"
        if treatment["sa_restored"]:
            what += "; SA restored"
        if treatment["zero_writes"]:
            what += f"; zero writes {treatment['zero_writes']}"
        t.add_row("treatment", what, f"{treatment['metrics']['perplexity']:.2f}",
                  ci_text(treatment["ratio"], treatment["ratio_ci95"]), f"{treatment['metrics']['stopword_mass']:.3f}")
    if control:
        short = (f"top {control['fraction']:g} of each linear" if control["fraction"] is not None
                 else f"top {control['k']} over the model")
        t.add_row("non-SW control", f"{control['count']} weights, {short}",
                  f"{control['metrics']['perplexity']:.2f}", ci_text(control["ratio"], control["ratio_ci95"]),
                  f"{control['metrics']['stopword_mass']:.3f}")
    return t


def cmd_ablate(args) -> int:
    from swtui.core.edits.keys import weights_hash
    from swtui.cli.render import comparison_table, generation_table, stopword_shift_table

    notices: list[str] = []
    prunes, scales, writes = _treatment(args)  # bad input fails before the model loads
    k, fraction = _control_args(args)
    if not prunes and not scales and not writes and not _experts(args) and k is None and fraction is None:
        raise UserInputError("nothing to ablate: give --prune, --scale, --zero-write, --prune-expert, --nonsw-control "
                             "or --nonsw-control-fraction")
    with progress_display() as progress:
        session = open_session(args, progress)
        before = weights_hash(session.model)
        report = run_ablation(session, args, notices, progress)
        session.reset()
        report["restored_exactly"] = weights_hash(session.model) == before
    if args.json:
        emit_json(report)
        return 0
    for n in notices:
        out_console.print(f"[dim]{n}[/dim]")
    out_console.print(arms_table(report))
    if report["control"]:
        zeroed = report["control"]["zeroed"]
        shown = ", ".join(f"{z['param']}[{z['index'][0]},{z['index'][1]}]" for z in zeroed[:8])
        out_console.print(f"[dim]control zeroed: {shown}{' …' if len(zeroed) > 8 else ''} (all of them in --json)[/dim]")
    out_console.print(comparison_table(report["baseline"], report["edited"]))
    out_console.print(stopword_shift_table(report["stopwords"]["top_stopwords"], "stopwords that moved"))
    out_console.print(stopword_shift_table(report["stopwords"]["top_other"], "other tokens that moved"))
    out_console.print(generation_table(report["prompt"], report["baseline"]["generation"], report["edited"]["generation"]))
    out_console.print(f"restore-all gives the original weights: {report['restored_exactly']}")
    return 0
