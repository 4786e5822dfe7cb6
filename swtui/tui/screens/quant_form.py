"""QuantForm: every quantization setting, validated as you type; replace or add as a variant."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from swtui.core.errors import SwtuiError
from swtui.core.quant_session import METHODS, parse_config

GROUPINGS = (("per tensor", "tensor"), ("per output channel", "channel"), ("1-D blocks", "block"),
             ("2-D tiles", "tile"))


def _optional_number(text: str, what: str, kind=float):
    text = text.strip()
    if not text or text.lower() == "off":
        return None
    try:
        return kind(text)
    except ValueError:
        raise SwtuiError(f"{what} must be a number (or empty for off), not {text!r}") from None


class QuantForm(ModalScreen[tuple[str, dict] | None]):
    """Dismisses with ("replace" | "variant", config with a "name") or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, initial: dict | None = None, can_add: bool = True):
        super().__init__()
        self.initial = {"method": "rtn", "bits": 4, "group": "tensor", "block": 4096, "clip_z": None,
                        "keep_super_weights": False, "act_bits": None, "act_site": "input", "act_sa": False,
                        **(initial or {})}
        self.can_add = can_add

    def compose(self) -> ComposeResult:
        c = self.initial
        with Vertical(id="form-box"):
            yield Label("Quantization — every field validated; esc to cancel", classes="title")
            with Horizontal(classes="form-row"):
                yield Label("method", classes="form-label")
                yield Select([(m, m) for m in METHODS], value=c["method"], allow_blank=False, id="method")
                yield Label("bits", classes="form-label")
                yield Input(str(c["bits"]), id="bits", restrict=r"[0-9]*")
            with Horizontal(classes="form-row"):
                yield Label("grouping", classes="form-label")
                yield Select(GROUPINGS, value=c["group"], allow_blank=False, id="group")
                yield Label("size", classes="form-label")
                yield Input("" if c["block"] is None else str(c["block"]), id="block", placeholder="block / tile side")
            with Horizontal(classes="form-row"):
                yield Label("clip z", classes="form-label")
                yield Input("" if c["clip_z"] is None else f"{c['clip_z']:g}", id="clip", placeholder="off")
                yield Checkbox("keep super weights", c["keep_super_weights"], id="keep")
            with Horizontal(classes="form-row"):
                yield Label("act bits", classes="form-label")
                yield Input("" if c["act_bits"] is None else str(c["act_bits"]), id="act-bits", placeholder="off")
                yield Select([("down_proj input", "input"), ("down_proj output", "output")], value=c["act_site"],
                             allow_blank=False, id="act-site")
                yield Checkbox("keep super activation", c["act_sa"], id="act-sa")
            with Horizontal(classes="form-row"):
                yield Label("name", classes="form-label")
                yield Input(self.initial.get("name", ""), id="name", placeholder="variant name (add as variant)")
            yield Static("", id="form-error")
            with Horizontal(classes="form-row"):
                yield Button("Replace current", id="replace", variant="primary")
                yield Button("Add as variant", id="variant", disabled=not self.can_add)

    def on_mount(self) -> None:
        self.query_one("#method", Select).focus()
        self.validate()

    def config(self) -> dict:
        """The form as a quantization config; raises SwtuiError with a readable message."""
        bits = _optional_number(self.query_one("#bits", Input).value, "bits", int)
        group = self.query_one("#group", Select).value
        block = _optional_number(self.query_one("#block", Input).value, "size", int)
        cfg = {"method": self.query_one("#method", Select).value, "bits": 4 if bits is None else bits,
               "group": group, "block": block if group in ("block", "tile") else None,
               "clip_z": _optional_number(self.query_one("#clip", Input).value, "clip z"),
               "keep_super_weights": self.query_one("#keep", Checkbox).value,
               "act_bits": _optional_number(self.query_one("#act-bits", Input).value, "act bits", int),
               "act_site": self.query_one("#act-site", Select).value,
               "act_sa": self.query_one("#act-sa", Checkbox).value}
        if cfg["group"] in ("block", "tile") and block is None:
            raise SwtuiError(f"{cfg['group']} grouping needs a size")
        if cfg["act_sa"] and not cfg["act_bits"]:
            raise SwtuiError("keeping the super activation needs activation bits")
        return {"name": self.query_one("#name", Input).value.strip() or parse_config(cfg).describe(),
                **parse_config(cfg).to_dict(), "held_out": None}

    def validate(self) -> dict | None:
        error = self.query_one("#form-error", Static)
        try:
            cfg = self.config()
        except SwtuiError as exc:
            error.update(str(exc))
            error.add_class("-error")
            for button in self.query(Button):
                button.disabled = True
            return None
        error.update(f"✓ {parse_config({k: v for k, v in cfg.items() if k != 'name'}).describe()}")
        error.remove_class("-error")
        self.query_one("#replace", Button).disabled = False
        self.query_one("#variant", Button).disabled = not self.can_add
        return cfg

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.validate()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.validate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        cfg = self.validate()
        if cfg is not None:
            self.dismiss((event.button.id, cfg))

    def action_cancel(self) -> None:
        self.dismiss(None)
