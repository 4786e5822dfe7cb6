"""Textual messages carrying the inference thread's events to the UI thread."""

from __future__ import annotations

from textual.message import Message

from swtui.core.engine import protocol as ev


class EngineEvent(Message):
    """One event from the inference thread. Streaming tokens and progress replace stale ones."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, EngineEvent):
            return False
        a, b = self.event, message.event
        if isinstance(a, ev.TokenStreamed) and isinstance(b, ev.TokenStreamed):
            return a.variant == b.variant
        return isinstance(a, ev.Progress) and isinstance(b, ev.Progress)


# -- a screen asks its owner ---------------------------------------------------------------------------
# Screens never call their owner by name: they post one of these, it bubbles from the screen to the
# app, and the app (which owns the engine and the main screen) acts on it.


class RunComparison(Message):
    """Run the side-by-side comparison of `variants` (again)."""

    def __init__(self, variants: list) -> None:  # quant.config.Variant
        super().__init__()
        self.variants = variants


class ExportSnapshot(Message):
    """Export a snapshot whose picture is the screen on top (a comparison or a sweep keeps its own)."""


class CancelWork(Message):
    """Stop whatever the engine runs (a screen showing a comparison or a sweep is left while it runs)."""


class Notice(Message):
    """A notification, drawn in a line of the screen (`SwtuiApp.notify`): never a toast."""

    def __init__(self, message: str, title: str, severity: str, timeout: float) -> None:
        super().__init__()
        self.message, self.title, self.severity, self.timeout = message, title, severity, timeout

    @property
    def text(self) -> str:
        return f"{self.title}: {self.message}" if self.title else self.message
