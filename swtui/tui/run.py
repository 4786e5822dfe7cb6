"""Running the inspector as a program: signals, a fast exit, the exit code."""

from __future__ import annotations

import os
import signal
import sys

from swtui.tui.app import SwtuiApp


def _finish(app: SwtuiApp) -> int:
    """After the screen is gone: report a failed load, then leave at once.

    The terminal is already restored. Interpreter teardown after a torch + transformers session
    takes over a second here (their atexit handlers and module finalisers), and a torch call still
    in flight on the inference thread may take longer, or abort the process at shutdown. Nothing
    is left to save (snapshots are written and fsynced synchronously), so the process ends with
    os._exit once output and logs are flushed: `q` gives the shell back in a fraction of a second.
    """
    import logging

    code = app.return_code or 0
    if app.load_error:
        print(app.load_error, file=sys.stderr)
        code = 2
    app.engine.stop(timeout=0)  # tell it to stop; waiting would only delay the exit
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_on_signals(app: SwtuiApp) -> None:
    """SIGTERM and SIGINT end the app cleanly (the inference thread is told to stop)."""
    def handler(signum, frame):
        app.engine.cancel()
        app.call_later(app.exit)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_app(source: str | None, load_options=None, prompt: str | None = None, max_new_tokens: int = 24,
            theme: str | None = None, eval_text: str | None = None) -> int:
    """The inspector on `source` (None: the demo model) with plain options; returns the exit code."""
    app = SwtuiApp(source, load_options, prompt=prompt, max_new_tokens=max_new_tokens, theme=theme,
                   eval_text=eval_text)
    _exit_on_signals(app)
    app.run(headless=os.environ.get("SWTUI_HEADLESS") == "1")
    return _finish(app)


def run_snapshot_app(source: str | None, load_options, data: dict, theme: str | None = None,
                     force: bool = False) -> int:
    """`swtui open SNAPSHOT`: the inspector with the snapshot's state re-applied."""
    app = SwtuiApp(source, load_options, theme=theme, snapshot=data, snapshot_force=force,
                   max_new_tokens=data["prompts"].get("max_new_tokens") or 24)
    _exit_on_signals(app)
    app.run(headless=os.environ.get("SWTUI_HEADLESS") == "1")
    return _finish(app)
