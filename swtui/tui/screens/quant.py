"""QuantDialog: pick a quantization preset (or full precision) with the keyboard."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from swtui.core.defaults import PAPER_BITS
from swtui.core.quant.presets import presets


class QuantDialog(ModalScreen[tuple | None]):
    """Dismisses with (how, label, config) — how: "apply", "variant" or "form"; config a
    `QuantConfig`, None for full precision — or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("a", "add_variant", "add as variant"),
                Binding("f", "form", "form")]

    def __init__(self, bits: int = PAPER_BITS):
        super().__init__()
        self.presets = presets(bits)  # RTN at the bits that mean something on this source

    def compose(self) -> ComposeResult:
        with Vertical(id="quant-box"):
            yield Label("Quantization — enter: apply · a: add as a variant to compare (C) · f: the full form · "
                        "esc: cancel")
            yield OptionList(*[Option(label, id=str(i)) for i, (label, _) in enumerate(self.presets)], id="quant-list")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def _highlighted(self) -> tuple:
        index = self.query_one(OptionList).highlighted or 0
        return self.presets[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        label, config = self.presets[int(event.option.id)]
        self.dismiss(("apply", label, config))

    def action_add_variant(self) -> None:
        self.dismiss(("variant", *self._highlighted()))

    def action_form(self) -> None:
        self.dismiss(("form", "", None))

    def action_cancel(self) -> None:
        self.dismiss(None)
