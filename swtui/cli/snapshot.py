"""`swtui export`, `swtui open`, `swtui report`."""

from __future__ import annotations

from swtui.core.defaults import PROBE_PROMPT
from swtui.core.errors import SwtuiError


def add_export_options(p) -> None:
    g = p.add_argument_group("export")
    g.add_argument("--out", default="snapshots", help="folder for the snapshot (snapshots/)")
    g.add_argument("--prune", action="append", default=[], metavar="L,R,C")
    g.add_argument("--scale", action="append", default=[], metavar="L,R,C=F")
    g.add_argument("--restore-sa", action="store_true")
    g.add_argument("--zero-write", action="append", default=[], metavar="L,CH",
                   help="activation ablation: layer L's MLP writes nothing on channel CH (repeatable)")
    g.add_argument("--nonsw-control", type=int, default=None, metavar="K")
    g.add_argument("--sa-prompt", default=PROBE_PROMPT)
    g.add_argument("--quant", default=None, metavar="JSON", help='quantization config, e.g. \'{"method": "bnb-nf4"}\'')
    g.add_argument("--no-svg", action="store_true", help="skip the SVG screenshot (it renders the TUI offscreen)")


def render_svg(session, prompt: str, max_new_tokens: int, size=(120, 40), detection=None) -> str:
    """Render the inspector offscreen on this session and return its SVG screenshot."""
    import asyncio
    import time

    from swtui.tui.app import SwtuiApp

    app = SwtuiApp(session=session, prompt=prompt, max_new_tokens=max_new_tokens, detect_on_load=False,
                   detection=detection)  # detection's spike threshold in the chart
    result = {}

    async def drive():
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 600
            quiet = 0
            while time.monotonic() < deadline and quiet < 4:
                await pilot.pause(0.1)
                idle = app.engine.idle and app.engine.last_measurement is not None
                quiet = quiet + 1 if idle else 0
            app.clear_notifications()
            await pilot.pause(0.2)
            result["svg"] = app.export_screenshot(title=f"swtui — {session.loaded.name}")
            app.engine.stop()

    asyncio.run(drive())
    return result["svg"]


def cmd_export(args) -> int:
    import json

    from swtui.core.detection.detect import adopt, detect
    from swtui.core.quant.session import apply_quant_config
    from swtui.core.snapshot.snapshot import build_snapshot, write_snapshot
    from swtui.core.evidence import metrics
    from swtui.cli.ablate import apply_ablation_args
    from swtui.cli.common import detect_options, emit_json, open_session, out_console, progress_display

    notices: list[str] = []
    quant = None
    if args.quant:
        try:
            quant = json.loads(args.quant)
        except ValueError:
            raise SwtuiError("--quant must be a JSON object, e.g. '{\"method\": \"rtn\", \"bits\": 4}'") from None
    with progress_display() as progress:
        session = open_session(args, progress)
        detection = detect(session, detect_options(args), progress)
        adopt(session, detection)
        if args.prune or args.scale or args.nonsw_control or args.zero_write:
            apply_ablation_args(session, args, notices)
        if quant is not None:
            apply_quant_config(session, quant, progress)
        progress("measuring baseline vs current", None)
        text = metrics.eval_text(args.eval_file)
        measurement = metrics.measure(session, args.gen_prompt, args.max_new_tokens, text)
        svg = None if args.no_svg else render_svg(session, args.gen_prompt, args.max_new_tokens, detection=detection)
        data = build_snapshot(session, detection=detection, measurement=measurement,
                              prompt=args.gen_prompt, max_new_tokens=args.max_new_tokens,
                              eval_text=text if args.eval_file else None)
        path = write_snapshot(data, args.out, svg=svg)
    if args.json:
        emit_json({"path": str(path)})
    else:
        out_console.print(f"snapshot written to [bold]{path}[/bold]")
    return 0


def reopen(args, data):
    """Load the snapshot's model (or --model), check the hash, re-apply; returns (session, notes)."""
    from swtui.core.snapshot.snapshot import apply_snapshot, model_source
    from swtui.cli.common import open_session, progress_display

    args.model = args.model or model_source(data)
    with progress_display() as progress:
        session = open_session(args, progress)
        notes = apply_snapshot(session, data, force=args.force)
    return session, notes


def cmd_open(args) -> int:
    from swtui.core.snapshot.snapshot import load_snapshot

    data = load_snapshot(args.snapshot)
    if not args.headless:
        from swtui.cli.common import load_options
        from swtui.core.snapshot.snapshot import model_source
        from swtui.tui.run import run_snapshot_app

        return run_snapshot_app(args.model or model_source(data), load_options(args), data, theme=args.theme,
                                force=args.force)
    from swtui.core.evidence import metrics
    from swtui.core.snapshot.snapshot import OTHER_TEXT, StateMismatch, compare_metrics
    from swtui.cli.common import emit_json, out_console

    text = metrics.eval_text(args.eval_file) if args.eval_file else None
    session, notes = reopen(args, data)  # raises on a state or weights mismatch (unless --force)
    prompt, n = data["prompts"]["generation"], data["prompts"]["max_new_tokens"]
    m = metrics.measure(session, prompt, n, text)  # no prompt saved (schema 1): no generation
    matches, problems = compare_metrics(data, m, text)
    if problems and not args.force:
        raise StateMismatch("the reopened session measures differently from the snapshot: " + "; ".join(problems))
    if matches["perplexity"] == OTHER_TEXT:
        saved_on = data["metrics"]["eval_text"]
        notes.append(f"the snapshot's perplexity and stopword mass were measured on another text ({saved_on['chars']} characters, "
                     f"sha256 {saved_on['sha256'][:12]}…): pass that file with --eval-file to compare it")
    want = data["model"]["current_weights_sha256"]
    result = {"notes": notes, "edits": session.ledger.summary(), "quantization": session.quant_config,
              "zero_writes": [list(k) for k in sorted(session.zero_writes)],
              "zero_masks": {k: len(v) for k, v in session.ledger.zero_masks.items()},
              "variants": [v["name"] for v in (data["comparison"] or {}).get("variants") or []],
              "generation": {v: m[v].generation for v in ("base", "current")},
              "perplexity": {v: m[v].perplexity for v in ("base", "current")},
              "matches": {"state": True,  # apply_snapshot checked it (a difference raised, or is a --force note)
                          "weights": "not saved" if want is None else session.current_hash() == want,
                          **matches}}
    if args.force:
        result["matches"]["state"] = not any("differs from the one saved" in note for note in notes)
    if args.json:
        emit_json(result)
    else:
        for note in notes:
            out_console.print(f"[yellow]{note}[/yellow]")
        ppl = result["perplexity"]
        out_console.print(f"re-applied {len(result['edits'])} edit(s), {len(result['zero_writes'])} zeroed write(s), "
                          f"{sum(result['zero_masks'].values())} masked weight(s); "
                          f"quantization: {session.quant_config or 'none'}")
        out_console.print(f"perplexity {ppl['base']:.2f} → {ppl['current']:.2f}; matches the snapshot: {result['matches']}")
    return 0


def cmd_report(args) -> int:
    from rich.markdown import Markdown

    from swtui.core.snapshot.report import markdown_report
    from swtui.core.snapshot.snapshot import load_snapshot
    from swtui.cli.common import out_console

    data = load_snapshot(args.snapshot)
    out_console.print(Markdown(markdown_report(data)))
    return 0
