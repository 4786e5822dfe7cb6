"""AskDialog: one validated line of input (scale factor, label, prompt)."""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AskDialog(ModalScreen[str | None]):
    """Dismisses with the text, or None on escape. `validate` returns an error message or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = "", validate: Callable[[str], str | None] | None = None):
        super().__init__()
        self.question = question
        self.value = value
        self.validate_fn = validate

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box"):
            yield Label(self.question, id="ask-question")
            yield Input(value=self.value, id="ask-input")
            yield Label("", id="ask-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        error = self.validate_fn(event.value) if self.validate_fn else None
        if error:
            self.query_one("#ask-error", Label).update(error)
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def validate_factor(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return "a scale factor is a number, e.g. 0.5 or 2"
    if value != value or value in (float("inf"), float("-inf")):
        return "the factor must be finite"
    if abs(value) > 1e6:
        return "|factor| must be ≤ 1e6"
    return None


def validate_prompt(text: str) -> str | None:
    return "the prompt is empty" if not text.strip() else None
