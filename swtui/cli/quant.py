"""`swtui quant` and `swtui quant-sweep`: full precision vs quantized, super outliers held out or not."""

from __future__ import annotations

from rich.table import Table

from swtui.core.defaults import CLIP_Z, PAPER_BITS, SWEEP_BLOCKS
from swtui.core.errors import UserInputError
from swtui.core.quant.config import quant_confound

DEFAULT_SWEEP_BLOCKS = ",".join("tensor" if b is None else str(b) for b in SWEEP_BLOCKS)
BITS_HELP = (f"RTN bits, 2..8 (default {PAPER_BITS}, the paper's; on a source already quantized to ≤ {PAPER_BITS} "
             "bits, one below it: W4 on a Q4 source measures the source's grid, not the method)")


def add_quant_options(p, sweep: bool = False) -> None:
    g = p.add_argument_group("quantization")
    if not sweep:
        g.add_argument("--method", default="rtn", choices=["rtn", "bnb-int8", "bnb-nf4", "bnb-fp4"])
    g.add_argument("--bits", type=int, default=None, help=BITS_HELP)
    if sweep:
        g.add_argument("--blocks", default=DEFAULT_SWEEP_BLOCKS,
                       help=f"comma-separated 1-D block sizes, or 'tensor' ({DEFAULT_SWEEP_BLOCKS})")
    else:
        g.add_argument("--group", default=None, choices=["tensor", "channel", "block", "tile"],
                       help="RTN grouping (default: block when --block is given, else tensor)")
        g.add_argument("--block", type=int, default=None, help="1-D block size (or tile side with --group tile)")
        g.add_argument("--keep-super-weights", action="store_true",
                       help="hold the detected super weights out of quantization")
        g.add_argument("--act-bits", type=int, default=None, help="also fake-quantize down_proj activations")
        g.add_argument("--act-site", default="input", choices=["input", "output"])
        g.add_argument("--keep-super-activation", action="store_true",
                       help="with --act-bits: replace the super activation by the median, restore it after")
    g.add_argument("--clip-z", type=float, default=None if not sweep else CLIP_Z,
                   help="clip weights beyond this z-score of |W| before quantizing" + (f" ({CLIP_Z:g})" if sweep else ""))


def _session_with_detection(args, progress):
    """Open the model and detect as `scan` does (every round, the channels, the groups' verdicts):
    "keep super weights" holds out every super weight and every member of a super-weight group."""
    from swtui.core.detection.detect import DetectOptions, adopt, detect
    from swtui.cli.common import detect_options, open_session

    opts = detect_options(args) if hasattr(args, "max_rounds") else DetectOptions()
    session = open_session(args, progress)
    progress("detecting super weights and groups", None)
    adopt(session, detect(session, opts, progress))
    return session


def _held(session) -> tuple[list, list]:
    """(held-out keys as lists, the same with value and verdict) for tables and JSON."""
    from swtui.core.quant.session import held_out_json, held_out_keys

    keys = held_out_keys(session)
    return [list(k) for k in keys], held_out_json(session, keys)


def _bits(args, session=None) -> int:
    """--bits, or the default for this source (`SourceQuant.default_bits`; before a load: the paper's)."""
    if args.bits is not None:
        return args.bits
    return session.loaded.source_quant.default_bits(PAPER_BITS) if session is not None else PAPER_BITS


def _confound_line(confound: str | None) -> str:
    return f"[bold]source grid:[/bold] {confound}" if confound else ""


def _config_from_args(args, session=None) -> dict:
    group = args.group or ("block" if args.block else "tensor")
    return {"method": args.method, "bits": _bits(args, session), "group": group, "block": args.block, "clip_z": args.clip_z,
            "keep_super_weights": args.keep_super_weights, "act_bits": args.act_bits, "act_site": args.act_site,
            "act_sa": args.keep_super_activation}


def cmd_quant(args) -> int:
    from swtui.core.evidence import metrics
    from swtui.core.defaults import PROBE_PROMPT
    from swtui.core.detection.detect import run_probe
    from swtui.core.quant.session import apply_quant_config, parse_config
    from swtui.cli.common import emit_json, model_info, out_console, progress_display
    from swtui.cli.render import comparison_table, generation_table, stopword_shift_table

    parse_config(_config_from_args(args))  # bad options fail before the model loads
    with progress_display() as progress:
        session = _session_with_detection(args, progress)
        config = _config_from_args(args, session)
        before = session.current_hash()
        base_probe = run_probe(session, PROBE_PROMPT)
        label = apply_quant_config(session, config, progress)
        progress("measuring full precision vs quantized", None)
        m = metrics.measure(session, args.gen_prompt, args.max_new_tokens, metrics.eval_text(args.eval_file))
        q_probe = run_probe(session, PROBE_PROMPT)
        applied = session.ledger.quantizer.config.held_out
        apply_quant_config(session, None)
        restored = session.current_hash() == before
    from swtui.core.quant.session import held_out_json

    held = [list(k) for k in applied or ()]
    confound = quant_confound(session.loaded.source_quant, config)
    report = {
        "model": model_info(session), "config": config, "label": label, "held_out": held, "confound": confound,
        "held_out_detail": held_out_json(session, [tuple(k) for k in held]),
        "baseline": m["base"].to_dict(),
        "edited": m["current"].to_dict(),
        "stopwords": m.stopwords.to_dict(),
        "spikes": [{"layer": a.layer, "full_out_max": a.out_max, "quant_out_max": b.out_max,
                    "full_channel": a.out_channel, "quant_channel": b.out_channel}
                   for a, b in zip(base_probe.layers, q_probe.layers)],
        "restored_exactly": restored,
    }
    if args.json:
        emit_json(report)
        return 0
    out_console.print(f"[bold]{label}[/bold] vs full precision"
                      + (f" — super weights held out: {held}" if args.keep_super_weights else ""))
    if confound:
        out_console.print(_confound_line(confound))
    out_console.print(comparison_table(report["baseline"], report["edited"], "full precision vs quantized"))
    out_console.print(stopword_shift_table(report["stopwords"]["top_stopwords"], "stopwords that moved"))
    out_console.print(generation_table(args.gen_prompt, m["base"].generation, m["current"].generation))
    t = Table(title="does the super activation survive? (max |down_proj out| per layer)", title_justify="left")
    for col in ("layer", "full", "quantized", "channel"):
        t.add_column(col, justify="right")
    for row in report["spikes"]:
        t.add_row(str(row["layer"]), f"{row['full_out_max']:.1f}", f"{row['quant_out_max']:.1f}",
                  f"{row['full_channel']} → {row['quant_channel']}")
    out_console.print(t)
    out_console.print(f"back to full precision gives the original weights: {restored}")
    return 0


def parse_blocks(text: str) -> list[int | None]:
    blocks: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "tensor":
            blocks.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise UserInputError(f"--blocks takes integers or 'tensor', not {part!r}") from None
        if value < 2:
            raise UserInputError(f"block size {value} does not fit: it must be ≥ 2")
        blocks.append(value)
    return blocks


def cmd_quant_sweep(args) -> int:
    from swtui.core.evidence import metrics
    from swtui.core.quant.rtn import check_bits
    from swtui.core.evidence.sweeps import quant_meta, quant_sweep
    from swtui.cli.common import emit_json, model_info, out_console, progress_display
    blocks = parse_blocks(args.blocks)
    check_bits(_bits(args))
    with progress_display() as progress:
        session = _session_with_detection(args, progress)
        bits = _bits(args, session)
        text = metrics.eval_text(args.eval_file)
        base = metrics.perplexity(session, text, variants=("current",))["current"]
        rows = quant_sweep(session, bits, blocks, args.clip_z, text, progress)
    meta = quant_meta(session, bits, args.clip_z, base)
    _, detail = _held(session)
    report = {"model": model_info(session), **meta.to_json(), "held_out_detail": detail,
              "rows": [r.to_json() for r in rows],
              "columns": {"naive": "RTN", "keep_sw": "RTN with the super weights held out (no clipping)",
                          "clip": f"RTN after clipping |W| at z={args.clip_z:g}",
                          "sw_aware": f"clip z={args.clip_z:g}, RTN, restore the super weights",
                          "sw_aware_vs_naive": "ppl(SW-aware) / ppl(naive) on the same tokens (< 1: SW-aware wins)",
                          "confound": "why the source's own quantization confounds the row (null: it does not)"}}
    if args.json:
        emit_json(report)
        return 0
    held = list(meta.to_json()["held_out"])
    t = Table(title=f"W{bits} RTN perplexity by 1-D block size (full precision: {base:.2f}); held out {held}; "
                    f"SW-aware against naive on the same {rows[0].sw_aware_vs_naive.tokens if rows else 0} tokens, "
                    "95% intervals", title_justify="left")
    for col in ("block", "naive", "keep SW", f"clip z{args.clip_z:g}", "SW-aware", "SW-aware / naive", "source grid"):
        t.add_column(col, justify="right")
    for r in rows:  # bold: an interval wholly below 1 (SW-aware wins) or above (it loses)
        ratio = r.sw_aware_vs_naive
        t.add_row(r.label, f"{r.naive:.2f}", f"{r.keep_sw:.2f}", f"{r.clip:.2f}", f"{r.sw_aware:.2f}",
                  ratio.text(),
                  "reproduced" if r.confound and "reproduces" in r.confound else "confounded" if r.confound else "—",
                  style="bold" if ratio.hi < 1 or ratio.lo > 1 else None)
    out_console.print("[dim]keep SW: super weights left out of MIN/MAX and restored; clip: |W| clamped at "
                      "z·std+mean per block; SW-aware (the paper's): clip, quantize, restore the super weights[/dim]")
    out_console.print(t)
    if meta.confound:
        out_console.print(_confound_line(meta.confound) + f" — pass --bits {meta.source.default_bits(PAPER_BITS)} "
                          "(below the source's) for the paper's experiment")
    return 0


def parse_variant(text: str) -> dict:
    """NAME=JSON (a quantization config), NAME=full, or a preset name; "-noedits" after NAME drops
    the scalar edits for that variant."""
    import json

    name, _, spec = text.partition("=")
    if not name or not spec:
        raise UserInputError(f"--variant takes NAME=CONFIG, e.g. 'naive={{\"bits\": 4, \"group\": \"tensor\"}}', "
                             f"not {text!r}")
    if spec == "full":
        config = None
    else:
        try:
            config = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"--variant {name}: the config is not JSON ({exc.msg})") from None
        if not isinstance(config, dict):
            raise UserInputError(f"--variant {name}: the config must be a JSON object")
        config = {"method": "rtn", **config}
    return {"name": name, "config": config, "with_edits": True}  # Variant.from_dict validates the config


def cmd_compare(args) -> int:
    from swtui.core.evidence import metrics
    from swtui.core.evidence.variants import Variant, check_variants, compare
    from swtui.cli.common import emit_json, model_info, out_console, progress_display

    variants = [Variant.from_dict(parse_variant(v)) for v in args.variant]
    check_variants(variants)  # bad options fail before the model loads
    with progress_display() as progress:
        session = _session_with_detection(args, progress)
        results = compare(session, variants, args.gen_prompt, args.max_new_tokens, metrics.eval_text(args.eval_file),
                          progress)
    held, detail = _held(session)
    confounds = {v.name: quant_confound(session.loaded.source_quant, v.config) for v in variants}
    report = {"model": model_info(session), "variants": [v.to_dict() for v in variants],
              "super_weights": held, "held_out": held, "held_out_detail": detail,
              "results": {name: m.to_dict() for name, m in results.items()}, "confounds": confounds}
    if args.json:
        emit_json(report)
        return 0
    t = Table(title=f"baseline vs {len(variants)} variants (generation: {args.gen_prompt!r}); "
                    f"keep SW holds out {held}", title_justify="left", show_lines=True)
    t.add_column("")
    for name in results:
        t.add_column(name, ratio=1)
    base = results["baseline"]
    t.add_row("perplexity", *[f"{m.perplexity:.2f}" + ("" if n == "baseline" else f" (×{m.perplexity / base.perplexity:.3g})")
                              for n, m in results.items()])
    t.add_row("stopword mass", *[f"{m.stopword_mass:.3f}" for m in results.values()])
    t.add_row("generation", *[m.generation or "" for m in results.values()])
    t.add_row("source grid", *["—" if n == "baseline" else (confounds.get(n) or "not confounded") for n in results])
    out_console.print(t)
    return 0


def cmd_scale_sweep(args) -> int:
    from swtui.core.evidence import metrics
    from swtui.core.edits.ablation import parse_coord
    from swtui.core.evidence.sweeps import scale_sweep
    from swtui.cli.common import emit_json, model_info, out_console, progress_display

    factors = parse_factors(args.factors)
    key = parse_coord(args.sw) if args.sw else None
    with progress_display() as progress:
        if key is None:  # the first super weight detection confirms
            session = _session_with_detection(args, progress)
            supers = [s.key for s in session.super_weights if s.is_super]
            if not supers:
                raise UserInputError("detection found no super weight: name one with --sw L,R,C")
            key = supers[0]
        else:
            from swtui.cli.common import open_session

            session = open_session(args, progress)
        text = metrics.eval_text(args.eval_file)
        rows = scale_sweep(session, key, factors, text, progress)
    report = {"model": model_info(session), "super_weight": list(key),
              "value": session.ledger.pristine_value(*key), "rows": [r.to_json() for r in rows]}
    if args.json:
        emit_json(report)
        return 0
    t = Table(title=f"scaling W{list(key)} = {report['value']:.4g}: perplexity against ×1 on the same "
                    f"{rows[0].ratio.tokens} tokens, 95% intervals", title_justify="left")
    for col in ("factor", "perplexity", "vs ×1", "stopword mass"):
        t.add_column(col, justify="right")
    for r in rows:  # bold: an interval that lies wholly below or above ×1 (a change, not noise)
        t.add_row(f"×{r.factor:g}", f"{r.perplexity:.3f}", r.ratio.text(), f"{r.stopword_mass:.4f}",
                  style="bold" if r.ratio.hi < 1 or r.ratio.lo > 1 else None)
    out_console.print(t)
    return 0


def parse_factors(text: str) -> list[float]:
    from swtui.core.edits.keys import check_factor

    try:
        return [check_factor(part.strip()) for part in text.split(",") if part.strip()] or _none()
    except UserInputError as exc:
        raise UserInputError(f"--factors: {exc}") from None


def _none():
    raise UserInputError("give at least one factor")
