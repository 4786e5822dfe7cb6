"""`swtui census`: every model under some paths (and the local HF cache) scanned as `scan` does,
one row each: on the terminal, as `--json`, and with `--out` a folder (census.json, census.md,
one snapshot per model)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from rich.table import Table

from swtui.cli.common import emit_json, err_console, out_console
from swtui.cli.render import ci_text
from swtui.core.errors import SnapshotError, UserInputError


def add_census_options(p) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders (walked for .gguf files and Hugging Face model folders) or .gguf files")
    g = p.add_argument_group("census")
    g.add_argument("--hf-cache", action="store_true",
                   help="also every causal LM in the local Hugging Face cache (its main revision)")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="write census.json, census.md and one snapshot per model (DIR/snapshots/) into DIR")
    g.add_argument("--force", action="store_true",
                   help="recompute every model (rows are otherwise reused from the cache when the file, "
                        "swtui's version and the options are the same)")


# -- progress over models and stages -----------------------------------------------------------
@contextlib.contextmanager
def census_progress(names: list[str]):
    """Yields progress(i, stage, fraction): a bar over models and one over the current model's stages
    on a terminal, otherwise one line per stage on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = len(names)
    if not err_console.is_terminal:
        last = {}

        def plain(i: int, stage: str, fraction) -> None:
            if last.get(i) != stage:
                last[i] = stage
                err_console.print(f"[dim][{i + 1}/{total}] {names[i]}: {stage}[/dim]", highlight=False)
        yield plain
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as prog:
        models = prog.add_task("models", total=total)
        stages = prog.add_task("", total=None)

        def update(i: int, stage: str, fraction) -> None:
            prog.update(models, completed=i + (1 if stage == "done" else 0),
                        description=f"model {i + 1}/{total}: {names[i]}")
            prog.update(stages, description=f"  {stage}", total=None if fraction is None else 1.0,
                        completed=fraction or 0.0)
        yield update


# -- rendering ---------------------------------------------------------------------------------
def channels_text(row: dict) -> str:
    lines = []
    for g in row.get("channels", []):
        if not g["massive"]:
            continue
        ab = g["ablations"]
        lines.append(f"{g['channel']}: {g['verdict'] or 'unmeasured'}; writes zeroed "
                     f"{ci_text(ab['write_zeroed'], ab['write_zeroed_ci95'])}, carriers together "
                     f"{ci_text(ab['pruned_together'], ab['pruned_together_ci95'])}")
    return "\n".join(lines) or "none"


def super_weights_text(row: dict) -> str:
    lines = [f"{c['layer']}[{c['row']},{c['col']}] {c['value']:.3g} {ci_text(c['ppl_ratio'], c['ppl_ratio_ci95'])} "
             f"{c['verdict']}" for c in row.get("super_weights", [])]
    return "\n".join(lines) or "none"


def catalog_text(row: dict) -> str:
    cat = row.get("catalog") or {}
    if not cat.get("entry"):
        return cat.get("summary", "—")
    return f"{cat['entry']}: {cat['summary']}"


def params_text(n) -> str:
    return "—" if n is None else (f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k")


def quant_text(sq: dict | None) -> str:
    if not sq:
        return "—"
    return sq["down_type"] if sq.get("quantized") else "float"


def time_text(row: dict) -> str:
    return f"{row.get('seconds', 0):.1f} s" + (" (cached)" if row.get("cached") else "")


def census_table(rows: list[dict]) -> Table:
    t = Table(title="census (ratios: perplexity against the unedited model, 95% intervals)", title_justify="left",
              header_style="bold", show_lines=True)
    for col in ("model", "family", "params", "layers", "source quant", "massive channels", "super weights",
                "catalog", "time"):
        t.add_column(col, justify="right" if col in ("params", "layers", "time") else "left")
    for r in rows:
        if r.get("error"):
            t.add_row(r["name"], "—", "—", "—", "—", f"[red]error ({r['error']['kind']}): {r['error']['message']}[/red]",
                      "—", "—", time_text(r))
            continue
        t.add_row(r["name"], r["family"], params_text(r["params"]), str(r["layers"]), quant_text(r["source_quant"]),
                  channels_text(r), super_weights_text(r), catalog_text(r), time_text(r))
    return t


def census_markdown(report: dict) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    lines = ["# swtui census", "", f"swtui {report['swtui']}; {len(report['rows'])} models; verdicts: the 95% "
             "interval of each perplexity ratio against the impact threshold (README: Detection, exactly).", "",
             "| model | family | params | layers | source quant | massive channels | super weights | catalog | time |",
             "|---|---|---:|---:|---|---|---|---|---:|"]
    for r in report["rows"]:
        if r.get("error"):
            cells = [r["name"], "—", "—", "—", "—", f"error ({r['error']['kind']}): {r['error']['message']}", "—", "—",
                     time_text(r)]
        else:
            snap = f" ([snapshot]({r['snapshot']}/report.md))" if r.get("snapshot") else ""
            cells = [r["name"] + snap, r["family"], params_text(r["params"]), str(r["layers"]),
                     quant_text(r["source_quant"]), channels_text(r), super_weights_text(r), catalog_text(r),
                     time_text(r)]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


# -- the --out folder --------------------------------------------------------------------------
def write_model_snapshot(out: Path, snapshot: dict) -> str:
    """The model's snapshot under out/snapshots (reused when this folder already holds it: a
    resumed census rewrites nothing); returns its path relative to `out`."""
    from swtui.core.snapshot.snapshot import write_snapshot

    folder = out / "snapshots"
    for existing in sorted(folder.glob("*/findings.json")):
        try:
            old = json.loads(existing.read_text())
        except (OSError, ValueError):
            continue
        if old.get("created") == snapshot["created"] and old.get("model") == snapshot["model"]:
            return str(existing.parent.relative_to(out))
    return str(write_snapshot(snapshot, folder).relative_to(out))


def write_report(out: Path, report: dict) -> None:
    from swtui.core.snapshot.census import write_text_atomic

    write_text_atomic(out / "census.json", json.dumps(report, indent=1, default=float) + "\n")
    write_text_atomic(out / "census.md", census_markdown(report))


def cmd_census(args) -> int:
    from swtui import __version__
    from swtui.cli.common import detect_options, load_options
    from swtui.core.snapshot.census import CensusOptions, discover, options_record, run_census

    if not args.paths and not args.hf_cache:
        raise UserInputError("census needs at least one PATH, or --hf-cache")
    targets = discover(args.paths, args.hf_cache)
    if not targets:
        raise UserInputError("census: no GGUF file or Hugging Face model folder found under "
                             + (", ".join(args.paths) or "the Hugging Face cache"))
    opts = CensusOptions(load_options(args), detect_options(args), force=args.force)
    out = Path(args.out) if args.out else None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserInputError(f"--out {out}: {exc.strerror or exc}") from None
    report = {"kind": "swtui-census", "swtui": __version__, "options": options_record(opts.load, opts.detect),
              "targets": [t.source for t in targets], "rows": []}

    def on_row(i: int, row: dict, snapshot: dict | None) -> None:
        if out is not None:
            if snapshot is not None:
                try:
                    row["snapshot"] = write_model_snapshot(out, snapshot)
                except SnapshotError as exc:
                    row["snapshot_error"] = str(exc)
            report["rows"] = report["rows"] + [row]
            write_report(out, report)  # after every model: a killed census leaves what it did

    with census_progress([t.label for t in targets]) as progress:
        rows = run_census(targets, opts, progress, on_row)
    report["rows"] = rows
    if args.json:
        emit_json(report)
    else:
        out_console.print(census_table(rows))
        done = sum(1 for r in rows if not r.get("error"))
        cached = sum(1 for r in rows if r.get("cached"))
        out_console.print(f"[dim]{done} of {len(rows)} models scanned ({cached} from the cache), "
                          f"{len(rows) - done} failed[/dim]" + (f"; written to {out}" if out else ""))
    return 0

