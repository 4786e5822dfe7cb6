"""The argument parser: one parser per subcommand, built from shared option groups."""

from __future__ import annotations

import argparse

from swtui import __version__
from swtui.core.defaults import GEN_PROMPT, PROBE_PROMPT, SCALE_FACTORS

#: the subcommands, in the order `--help` lists them (swtui.cli.COMMANDS runs them): headless ones, then `serve`
SUBCOMMANDS = ("scan", "census", "ablate", "quant", "quant-sweep", "compare", "scale-sweep", "export", "open", "report",
               "serve")

class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other swtui error) and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"swtui: invalid input: {message} (see `{self.prog} --help`)\n")




def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"a whole number of threads, 1 or more, not {text!r}")
    return n


def _model_options(p: argparse.ArgumentParser, model_positional: bool = True) -> None:
    if model_positional:
        p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                       help="a local HF directory, a hub id in the local cache, a .gguf file, "
                            "or tiny:ARCH; default: the demo model (SmolLM2-135M-Instruct)")
    g = p.add_argument_group("loading")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    g.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16 (default: auto)")
    g.add_argument("--device-map", default=None, choices=["auto"], help="accelerate big-model dispatch")
    g.add_argument("--max-memory", default=None, metavar="SPEC",
                   help="with --device-map auto: per-device budget, e.g. cpu=8GiB,0=70GiB (the rest is offloaded)")
    g.add_argument("--offload-folder", default=None, metavar="DIR",
                   help="with --device-map auto: where accelerate may offload weights")
    g.add_argument("--stream", action="store_true",
                   help="models larger than memory: read each decoder layer from the safetensors files as it "
                        "runs, every arm of a look in one pass over the weights (docs/performance.md#streaming)")
    g.add_argument("--threads", type=_positive, default=None, metavar="N",
                   help="CPU threads for torch's forwards (default: torch's own, every core; OMP_NUM_THREADS "
                        "also sets it)")
    g.add_argument("--revision", default=None, help="hub revision (resolved from the local cache)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow model code from the repo (off)")
    g.add_argument("--allow-pickle", action="store_true",
                   help="load .bin pickle checkpoints (with weights_only=True); refused by default")
    g.add_argument("--down-proj", default=None, metavar="PATTERN",
                   help="fnmatch pattern naming the down projections, e.g. 'model.layers.*.mlp.down_proj'")


def _detect_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("detection")
    g.add_argument("--prompt", default=None, help=f"probe prompt (default: {PROBE_PROMPT!r})")
    g.add_argument("--z", type=float, default=2.5, dest="z",
                   help="a layer spikes when its max |down_proj input| and max |down_proj output| both score "
                        "≥ Z, robustly in log space against all layers, at one token (2.5; README: Detection)")
    g.add_argument("--ratio", type=float, default=None,
                   help="override the output score with max |down_proj output| ≥ RATIO × the median over layers")
    g.add_argument("--min-abs", type=float, default=0.0, help="and max |down_proj output| at least this (0)")
    g.add_argument("--any-token", action="store_true",
                   help="do not require the input and output spikes to meet at one token")
    g.add_argument("--max-rounds", type=int, default=8, help="prune-and-reprobe rounds at most (8)")
    g.add_argument("--impact-threshold", type=float, default=1.5,
                   help="ppl(pruned)/ppl(base) at which a candidate counts as a super weight (1.5)")
    g.add_argument("--no-impact", action="store_true", help="skip the per-candidate perplexity check")
    g.add_argument("--eval-tokens", type=int, default=None, metavar="N",
                   help="token budget of the verdicts: the corpus's first N tokens at most (default: all of its "
                        "verdict split; each arm stops earlier once its interval decides)")
    g.add_argument("--full-budget", action="store_true",
                   help="no sequential looks: every arm measured on the whole budget (slower; the reference "
                        "the sequential verdicts are tested against)")
    g.add_argument("--no-channels", action="store_true",
                   help="skip the massive residual channel search (and its writers' and channels' checks)")


def _metric_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metrics")
    g.add_argument("--eval-file", default=None,
                   help="plain-text file for perplexity (default: the bundled WikiText-2 excerpt's held-out documents)")
    g.add_argument("--gen-prompt", default=GEN_PROMPT, help="prompt for the greedy generation")
    g.add_argument("--max-new-tokens", type=int, default=24, help="tokens to generate (24)")


def _inspector_options(p: argparse.ArgumentParser) -> None:
    """What `swtui [MODEL]` takes (and `swtui serve` passes on to each app process)."""
    _model_options(p)
    p.add_argument("--theme", default=None, help="theme name (swtui-dark, swtui-light, solarized-dark, or one in the user theme folder)")
    p.add_argument("--prompt", default=None, help="generation prompt shown in the comparison panel")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--eval-file", default=None,
                   help="plain-text file the perplexity and the verdicts are measured on (default: the bundled "
                        "WikiText-2 excerpt)")


def build_parser(command: str | None) -> argparse.ArgumentParser:
    if command is None:
        p = Parser(
            prog="swtui", description="Inspect the super weights of a language model in the terminal. "
            f"Headless subcommands: {', '.join(SUBCOMMANDS[:-1])}; in a browser: serve (swtui SUBCOMMAND --help).")
        p.add_argument("--version", action="version", version=f"swtui {__version__}")
        _inspector_options(p)
        return p
    p = Parser(prog=f"swtui {command}")
    if command == "serve":
        p.description = ("The inspector in a browser (textual-serve): one app process per tab, with these options. "
                         "No authentication: it listens on localhost unless --host says otherwise.")
        _inspector_options(p)
        g = p.add_argument_group("server")
        g.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (127.0.0.1; any other is reachable from elsewhere: a warning says by whom)")
        g.add_argument("--port", type=int, default=8000, help="port (8000)")
        return p
    if command in ("scan", "ablate", "quant", "quant-sweep", "compare", "scale-sweep", "export"):
        _model_options(p)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    if command == "scan":
        _detect_options(p)
        p.add_argument("--eval-file", default=None,
                       help="plain-text file the verdicts are measured on: WikiText articles are split on their "
                            "headings, windows of 64 tokens (default: the bundled WikiText-2 test excerpt)")
    elif command == "census":
        from swtui.cli.census import add_census_options

        p.description = ("Scan every model under PATHs (GGUF files, Hugging Face model folders) and, with --hf-cache, "
                         "every causal LM of the local Hugging Face cache, one after another with scan's detection, "
                         "verdicts and intervals: one row per model. Rows are cached by (weights hash, swtui version, "
                         "options): an interrupted census resumes; --force recomputes.")
        add_census_options(p)
        _model_options(p, model_positional=False)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        _detect_options(p)
        p.add_argument("--eval-file", default=None,
                       help="plain-text file the verdicts are measured on: WikiText articles are split on their "
                            "headings, windows of 64 tokens (default: the bundled WikiText-2 test excerpt)")
    elif command == "ablate":
        p.add_argument("--prune", action="append", default=[], metavar="L,R,C", help="zero W[L][R, C] (repeatable)")
        p.add_argument("--scale", action="append", default=[], metavar="L,R,C=F", help="multiply W[L][R, C] by F")
        p.add_argument("--restore-sa", action="store_true", help="restore the super activation of each pruned weight")
        p.add_argument("--zero-write", action="append", default=[], metavar="L,CH",
                       help="activation ablation: layer L's MLP writes nothing on channel CH (repeatable)")
        p.add_argument("--prune-expert", action="append", default=[], metavar="L,E",
                       help="fused experts: zero expert E's whole down projection in layer L (repeatable)")
        p.add_argument("--nonsw-control", type=int, default=None, metavar="K",
                       help="the non-super-weight control, its own arm: zero the top K of |w| over all the decoder "
                            "linears together, sparing every weight detection names (candidates, group members, "
                            "channel writers)")
        p.add_argument("--nonsw-control-fraction", type=float, default=None, metavar="F",
                       help="the control as the reference code selects it: the top F of |w| in each decoder linear "
                            "(at least one per tensor; the paper: 1e-6), sparing what detection names")
        p.add_argument("--sa-prompt", default=PROBE_PROMPT,
                       help="prompt used to measure the super activation for --restore-sa")
        _metric_options(p)
    elif command in ("quant", "quant-sweep"):
        from swtui.cli.quant import add_quant_options

        add_quant_options(p, sweep=command == "quant-sweep")
        _detect_options(p)  # which weights are held out: detection as `scan` runs it
        _metric_options(p)
    elif command == "compare":
        p.add_argument("--variant", action="append", required=True, metavar="NAME=CONFIG",
                       help="a quantization variant (1 to 3): NAME=full, or NAME={JSON config}, e.g. "
                            "'sw-aware={\"bits\": 4, \"group\": \"tensor\", \"clip_z\": 9, "
                            "\"keep_super_weights\": true}' (method rtn unless given)")
        _detect_options(p)
        _metric_options(p)
    elif command == "scale-sweep":
        p.add_argument("--sw", default=None, metavar="L,R,C",
                       help="the weight to scale (default: the first super weight detection confirms)")
        factors = ",".join(f"{f:g}" for f in SCALE_FACTORS)
        p.add_argument("--factors", default=factors, help=f"comma-separated factors ({factors})")
        _metric_options(p)
    elif command == "export":
        from swtui.cli.snapshot import add_export_options

        add_export_options(p)
        _detect_options(p)
        _metric_options(p)
    elif command in ("open", "report"):
        p.add_argument("snapshot", metavar="SNAPSHOT", help="a snapshot folder or its findings.json")
        if command == "open":
            _model_options(p, model_positional=False)
            p.add_argument("--model", default=None, help="load this model instead of the one named in the snapshot")
            p.add_argument("--force", action="store_true", help="open even if the weight hash does not match")
            p.add_argument("--headless", action="store_true", help="print the re-applied state instead of the TUI")
            p.add_argument("--eval-file", default=None,
                           help="with --headless: the text to re-measure perplexity on (the snapshot's, to compare)")
            p.add_argument("--json", action="store_true")
            p.add_argument("--theme", default=None)
    return p
