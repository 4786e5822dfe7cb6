"""SwtuiApp: app-level concerns only. It owns the engine, the themes and the event routing; the
inspector's state and mission actions live in `MainScreen`. All model work happens in the
engine's thread."""

from __future__ import annotations

import collections
import os

from textual.app import App

from swtui.core.engine import protocol as ev
from swtui.core.defaults import GEN_PROMPT
from swtui.core.engine.engine import Engine
from swtui.core.quant.config import Variant
from swtui.tui.actions import bindings
from swtui.tui.commands import SwtuiCommands
from swtui.tui.messages import CancelWork, EngineEvent, ExportSnapshot, Notice, RunComparison
from swtui.tui.screens.ask import AskDialog
from swtui.tui.screens.help import HelpScreen
from swtui.tui.screens.main import MainScreen
from swtui.tui.themes import DEFAULT_THEME, load_themes

#: how many recent events `events_seen` keeps (tests and debugging; a session emits thousands)
EVENT_LOG = 4000


class EventLog:
    """The last `size` events, with a running count: `since(mark)` is what came after `mark = len(log)`."""

    def __init__(self, size: int = EVENT_LOG) -> None:
        self._items: collections.deque = collections.deque(maxlen=size)
        self.total = 0

    def append(self, event: ev.Event) -> None:
        self._items.append(event)
        self.total += 1

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        return iter(list(self._items))

    def since(self, mark: int) -> list[ev.Event]:
        kept_from = self.total - len(self._items)
        return list(self._items)[max(0, mark - kept_from):]

    def of(self, kind: type) -> list:
        return [e for e in self._items if isinstance(e, kind)]

    def clear(self) -> None:
        self._items.clear()


class SwtuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "swtui"
    COMMANDS = App.COMMANDS | {SwtuiCommands}
    BINDINGS = bindings("app")  # one registry: swtui.tui.actions (the mission keys are MainScreen's)

    def __init__(self, source: str | None = None, load_options=None, prompt: str | None = None,
                 max_new_tokens: int = 24, theme: str | None = None, session=None, detect_on_load: bool = True,
                 snapshot: dict | None = None, snapshot_force: bool = False, detection=None, engine=None,
                 eval_text: str | None = None):
        """`engine`: anything with the Engine's public interface, built as engine(emit) (tests pass
        a fake that replays recorded events); by default the real engine on `source`."""
        super().__init__()
        prompt = prompt or GEN_PROMPT
        if engine is None:
            self.engine = Engine(self._emit, source, load_options, prompt=prompt, max_new_tokens=max_new_tokens,
                                 detect_on_load=detect_on_load, session=session, detection=detection,
                                 snapshot=snapshot, snapshot_force=snapshot_force,
                                 eval_text=eval_text)
        else:
            self.engine = engine(self._emit)
        self.requested_theme = theme
        saved = ((snapshot or {}).get("comparison") or {}).get("variants") or []
        self.main = MainScreen(prompt, [Variant.from_dict(v) for v in saved])
        self.events_seen = EventLog()  # the last events, for tests and debugging
        self.notices: collections.deque = collections.deque(maxlen=200)  # the last notifications (messages.Notice), drawn or not
        self.load_error: str | None = None  # set when loading failed: the app exits with code 2
        # `make bench` drives the real app in a terminal: it asks for the wall time at which each
        # kind of event was first handled (and so drawn) through this file
        self._trace_path = os.environ.get("SWTUI_TRACE")
        self._traced: set[str] = set()
        self._theme_names: list[str] = []

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_mount(self) -> None:
        themes, problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        self._theme_names = [t.name for t in themes] or ["textual-dark"]
        wanted = self.requested_theme or DEFAULT_THEME
        if wanted in self._theme_names:
            self.theme = wanted
        else:
            problems.append(f"theme {wanted!r} does not exist; available: {', '.join(self._theme_names)}")
            self.theme = DEFAULT_THEME if DEFAULT_THEME in self._theme_names else self._theme_names[0]
        for p in problems:
            self.notify(p, severity="warning")

    # -- notices: drawn in a line of the screen, never as a toast over its figures ---------------------
    def notify(self, message: str, *, title: str = "", severity: str = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Textual's notify, drawn by the screen on top if it has a notice line (`show_notice`: the
        main screen's status line, a comparison's or a sweep's notice line), else by the main
        screen's status line, which a dialog leaves in sight. Thread-safe, as Textual's. The text
        is shown as written (swtui's notices carry no markup; `[507, 1229]` is an index)."""
        notice = Notice(message, title, severity, self.NOTIFICATION_TIMEOUT if timeout is None else timeout)
        self.notices.append(notice)  # deque.append is atomic: safe from the engine's thread too
        self.post_message(notice)

    def on_notice(self, message: Notice) -> None:
        shown = getattr(self.screen, "show_notice", None) or self.main.show_notice
        shown(message.text, message.severity, message.timeout)

    def clear_notifications(self) -> None:
        super().clear_notifications()
        for screen in {self.main, self.screen}:
            if hasattr(screen, "show_notice"):
                screen.show_notice(None)

    def on_main_screen_ready(self, message: MainScreen.Ready) -> None:
        self.engine.start()

    # -- the engine's events ------------------------------------------------------------------------
    def _emit(self, event: ev.Event) -> None:
        """Called from the engine's thread: post_message is thread-safe."""
        self.post_message(EngineEvent(event))

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self.events_seen.append(event)
        if self._trace_path and type(event).__name__ not in self._traced:
            self._trace(type(event).__name__)
        if self._trace_path and isinstance(event, ev.StateChanged):
            if "FirstProvisional" not in self._traced and any(r.ratio is not None for r in event.super_weights):
                self._trace("FirstProvisional")  # a candidate's interval is on screen, its verdict marked "?"
            if "FirstVerdict" not in self._traced and any(r.verdict is not None for r in event.super_weights):
                self._trace("FirstVerdict")  # a candidate's verdict, its controls measured
        if isinstance(event, ev.Failed) and self.main.model is None:
            # nothing to inspect: the same contract as the headless commands
            self.load_error = f"swtui: {event.title.lower()}: {event.message}"
            self.engine.stop(timeout=0)
            self.exit(return_code=2)
        elif isinstance(event, ev.Failed) and event.title == "Weight hash mismatch":
            self._ask_open_anyway(event.message)
        else:
            self.main.handle(event)

    def _ask_open_anyway(self, message: str) -> None:
        def answer(text: str | None) -> None:
            if text and text.strip().lower().startswith("y"):
                self.engine.submit(ev.ApplySnapshot(force=True))
            else:
                self.exit(message="snapshot not opened: weight hash mismatch")

        self.push_screen(AskDialog(f"{message.split(';')[0]}. Open the snapshot anyway? (y/n)", "n",
                                   lambda t: None if t.strip().lower()[:1] in ("y", "n") else "answer y or n"),
                         answer)

    def _trace(self, name: str) -> None:
        import time

        self._traced.add(name)
        with open(self._trace_path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.6f} {name}\n")

    # -- what screens ask of their owner (messages bubble from a screen to the app) -----------------
    def on_run_comparison(self, message: RunComparison) -> None:
        self.main.comparisons.run(message.variants)

    def on_export_snapshot(self, message: ExportSnapshot) -> None:
        self.main.action_export()

    def on_cancel_work(self, message: CancelWork) -> None:
        self.engine.cancel()

    # -- app-level actions ----------------------------------------------------------------------------
    def action_cancel(self) -> None:
        self.engine.cancel()

    def action_next_theme(self) -> None:
        names = self._theme_names
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.engine.stop(timeout=0)  # signal only: the UI never waits on the model
        self.exit()
