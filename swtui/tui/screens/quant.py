"""QuantDialog: pick a quantization preset (or full precision) with the keyboard."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

PRESETS: list[tuple[str, dict]] = [
    ("Full precision (exact restore)", {}),
    ("RTN W4, 1-D blocks of 4096", {"method": "rtn", "bits": 4, "group": "block", "block": 4096}),
    ("RTN W4, blocks of 4096, clip z9 + keep SW",
     {"method": "rtn", "bits": 4, "group": "block", "block": 4096, "clip_z": 9.0, "keep_super_weights": True}),
    ("RTN W4, per tensor", {"method": "rtn", "bits": 4, "group": "tensor"}),
    ("RTN W4, per tensor, clip z9 + keep SW",
     {"method": "rtn", "bits": 4, "group": "tensor", "clip_z": 9.0, "keep_super_weights": True}),
    ("RTN W8 + A8 (naive)", {"method": "rtn", "bits": 8, "group": "channel", "act_bits": 8}),
    ("RTN W8 + A8, SW and SA held out",
     {"method": "rtn", "bits": 8, "group": "channel", "act_bits": 8, "act_sa": True, "keep_super_weights": True}),
    ("bitsandbytes LLM.int8", {"method": "bnb-int8"}),
    ("bitsandbytes NF4", {"method": "bnb-nf4"}),
    ("bitsandbytes NF4 + keep SW (activation hook)", {"method": "bnb-nf4", "keep_super_weights": True}),
    ("bitsandbytes FP4", {"method": "bnb-fp4"}),
]


class QuantDialog(ModalScreen[tuple | None]):
    """Dismisses with (how, label, config) — how: "apply", "variant" or "form"; config {} = full
    precision — or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("a", "add_variant", "add as variant"),
                Binding("f", "form", "form")]

    def compose(self) -> ComposeResult:
        with Vertical(id="quant-box"):
            yield Label("Quantization — enter: apply · a: add as a variant to compare (C) · f: the full form · "
                        "esc: cancel")
            yield OptionList(*[Option(label, id=str(i)) for i, (label, _) in enumerate(PRESETS)], id="quant-list")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def _highlighted(self) -> tuple[str, dict]:
        index = self.query_one(OptionList).highlighted or 0
        label, config = PRESETS[index]
        return label, dict(config)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        label, config = PRESETS[int(event.option.id)]
        self.dismiss(("apply", label, dict(config)))

    def action_add_variant(self) -> None:
        self.dismiss(("variant", *self._highlighted()))

    def action_form(self) -> None:
        self.dismiss(("form", "", {}))

    def action_cancel(self) -> None:
        self.dismiss(None)
