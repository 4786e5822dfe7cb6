"""What every headless command shares: options to plain values, progress on stderr, output helpers."""

from __future__ import annotations

import contextlib
import json
import sys

from rich.console import Console

from swtui.core.errors import UserInputError

err_console = Console(stderr=True)
# piped or redirected, a table is read later in a file or pager: wide enough not to cut its figures
out_console = Console() if sys.stdout.isatty() else Console(width=max(160, Console().width))


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
    from swtui.core.model.loading import LoadOptions, parse_max_memory

    return LoadOptions(device=args.device, dtype=args.dtype, device_map=args.device_map, revision=args.revision,
                       trust_remote_code=args.trust_remote_code, allow_pickle=args.allow_pickle,
                       down_proj=args.down_proj, max_memory=parse_max_memory(getattr(args, "max_memory", None)),
                       offload_folder=getattr(args, "offload_folder", None), stream=getattr(args, "stream", False))


def open_session(args, progress):
    from swtui.core.model.loading import load_model
    from swtui.core.edits.session import Session

    loaded = load_model(getattr(args, "model", None), load_options(args), progress)
    if loaded.streamed:
        loaded.stream.on_layer = stream_progress(progress)
    return Session(loaded, down_proj=args.down_proj)


def stream_progress(progress):
    """A streamed model's per-layer progress (layer, look, bytes read, ETA) as ProgressFn updates:
    every layer on a terminal's bar, and one line per pass (its last layer) where lines are printed."""
    def on_layer(event) -> None:
        last = event.layer + 1 == event.layers
        progress(event.text(), None if last else (event.layer + 1) / event.layers)
    return on_layer


def stream_json(session, plan_passes: list) -> dict:
    """`stream` for a streamed run: what was read, the plan's passes, the most layers alive at once."""
    stream = session.loaded.stream
    if stream is None:
        return {}
    return {"stream": {**stream.stats.to_json(), "bytes_per_pass": stream.pass_bytes, "layers_alive_max": stream.peak_live,
                       "passes": round(stream.stats.bytes_read / stream.pass_bytes, 3) if stream.pass_bytes else 0,
                       "plan_passes": plan_passes}}


def model_info(session) -> dict:
    return session.info().to_json()


def emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, default=float) + "\n")


def detect_options(args):
    from swtui.core.detection.detect import DEFAULT_PROMPT, DetectOptions

    if (args.ratio is not None and args.ratio <= 0) or args.max_rounds < 1 or args.z <= 0:
        raise UserInputError("--ratio and --z must be > 0 and --max-rounds ≥ 1")
    from swtui.core.evidence.corpus import WINDOW
    from swtui.core.evidence.stats import MIN_WINDOWS

    least = MIN_WINDOWS * (WINDOW - 1)
    if args.eval_tokens is not None and args.eval_tokens < least:
        raise UserInputError(f"--eval-tokens must be at least {least} ({MIN_WINDOWS} windows of {WINDOW} tokens; "
                             "fewer cannot carry an interval)")
    eval_file = getattr(args, "eval_file", None)
    if eval_file:
        from swtui.core.evidence.metrics import eval_text
    return DetectOptions(prompt=args.prompt or DEFAULT_PROMPT, z=args.z, ratio=args.ratio, min_abs=args.min_abs,
                         any_token=args.any_token,
                         max_rounds=args.max_rounds, impact=not args.no_impact,
                         impact_threshold=args.impact_threshold, channels=not args.no_channels,
                         eval_text=eval_text(eval_file) if eval_file else None, eval_tokens=args.eval_tokens,
                         sequential=not getattr(args, "full_budget", False))
