"""Textual messages carrying the inference thread's events to the UI thread."""

from __future__ import annotations

from textual.message import Message

from swtui.core import protocol as ev


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
