"""Command line: `swtui [MODEL]` opens the inspector; subcommands run headless.

Argparse namespaces stop at this package's edge: the TUI gets plain options (`LoadOptions`, a
prompt, a theme). Bad input never shows a traceback: SwtuiError subclasses print one line on
stderr and exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys

from swtui.cli.parser import SUBCOMMANDS, build_parser

#: subcommand -> (module, function); modules are imported only for the command that runs
COMMANDS = {
    "scan": ("swtui.cli.scan", "cmd_scan"),
    "census": ("swtui.cli.census", "cmd_census"),
    "ablate": ("swtui.cli.ablate", "cmd_ablate"),
    "quant": ("swtui.cli.quant", "cmd_quant"),
    "quant-sweep": ("swtui.cli.quant", "cmd_quant_sweep"),
    "compare": ("swtui.cli.quant", "cmd_compare"),
    "scale-sweep": ("swtui.cli.quant", "cmd_scale_sweep"),
    "export": ("swtui.cli.snapshot", "cmd_export"),
    "open": ("swtui.cli.snapshot", "cmd_open"),
    "report": ("swtui.cli.snapshot", "cmd_report"),
    "serve": ("swtui.cli.serve", "cmd_serve"),
}
assert set(COMMANDS) == set(SUBCOMMANDS)


def run_inspector(args) -> int:
    """`swtui [MODEL]`: the TUI, given plain options."""
    from swtui.cli.common import load_options
    from swtui.tui.run import run_app

    eval_text = None
    if args.eval_file:  # read here: a bad path fails before the screen opens
        from swtui.core.evidence.metrics import eval_text as read_eval_text

        eval_text = read_eval_text(args.eval_file)
    return run_app(args.model, load_options(args), prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                   theme=args.theme, eval_text=eval_text)


def use_threads(n: int) -> None:
    """torch's intra-op threads: OMP_NUM_THREADS before torch is imported (the TUI imports it on its
    engine thread; `serve`'s app processes inherit it), set_num_threads where it already is."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(command)
    args = parser.parse_args(argv[1:] if command else argv)
    if getattr(args, "threads", None):
        use_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from swtui.core.errors import SwtuiError

    try:
        if command is None:
            return run_inspector(args)
        if command != "serve":  # the server never imports torch; its app processes do
            # a slow first import of torch + transformers must never look like a hang
            print(f"… swtui {command}: starting (importing torch)", file=sys.stderr, flush=True)
        module, function = COMMANDS[command]
        return getattr(importlib.import_module(module), function)(args)
    except SwtuiError as err:
        print(f"swtui: {err.title.lower()}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("swtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
