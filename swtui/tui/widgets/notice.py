"""NoticeLine: the last notification, on one line of a screen that has no status line (a
comparison, a sweep), for `timeout` seconds. The app draws every notification in a line like this
or in the main screen's status line, never as a toast over a screen's figures (`SwtuiApp.notify`).
"""

from __future__ import annotations

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from swtui.tui.evidence_text import fit_words


class NoticeLine(Static):
    COMPONENT_CLASSES = {"notice--warning", "notice--error", "notice--information"}

    def on_mount(self) -> None:
        self._timer: Timer | None = None
        self._notice: tuple[str, str] | None = None

    def show(self, text: str | None, severity: str = "information", timeout: float = 5.0) -> None:
        """Show `text` (None: clear the line), gone after `timeout` seconds."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._notice = None if text is None else (text, severity)
        self.refresh()
        if text is not None:
            self._timer = self.set_timer(timeout, lambda: self.show(None))

    def render(self) -> Text:
        if self._notice is None:
            return Text("")
        text, severity = self._notice
        width = self.size.width or 200  # shortened at a word, never inside a number
        return Text(fit_words(text, width), style=self.get_component_rich_style(f"notice--{severity}", partial=True),
                    no_wrap=True, overflow="crop")
