"""QuantForm: every quantization setting, validated as you type; replace or add as a variant."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from swtui.core.errors import SwtuiError
from swtui.core.quant.config import METHODS, QuantConfig, parse_config, quant_confound
from swtui.core.model.source_quant import FLOAT, SourceQuant

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


class QuantForm(ModalScreen[tuple[str, str, QuantConfig] | None]):
    """Dismisses with ("replace" | "variant", name, config) or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, initial: QuantConfig | None = None, can_add: bool = True, held_out: tuple = (),
                 source: SourceQuant = FLOAT, name: str = ""):
        super().__init__()
        self.held_out = tuple(held_out)  # what "keep super weights" holds out (the engine's set)
        self.source = source
        self.initial = (initial or QuantConfig()).to_dict()  # the defaults are QuantConfig's, said once
        self.initial["name"] = name
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
            yield Static(self._held_text(), id="form-held")
            yield Static("", id="form-source")
            yield Static("", id="form-error")
            with Horizontal(classes="form-row"):
                yield Button("Replace current", id="replace", variant="primary")
                yield Button("Add as variant", id="variant", disabled=not self.can_add)

    def _held_text(self) -> str:
        if not self.held_out:
            return "keep super weights holds out nothing yet (no detection has judged a super weight)"
        keys = ", ".join(f"{k[0]}[{k[1]},{k[2]}]" + (f"·e{k[3]}" if len(k) > 3 else "") for k in self.held_out[:6])
        more = f" and {len(self.held_out) - 6} more" if len(self.held_out) > 6 else ""
        return f"keep super weights holds out {len(self.held_out)}: {keys}{more}"

    def on_mount(self) -> None:
        self.query_one("#method", Select).focus()
        self.validate()

    def config(self) -> tuple[str, QuantConfig]:
        """The form as (name, config); raises SwtuiError with a readable message."""
        bits = _optional_number(self.query_one("#bits", Input).value, "bits", int)
        group = self.query_one("#group", Select).value
        block = _optional_number(self.query_one("#block", Input).value, "size", int)
        act_bits = _optional_number(self.query_one("#act-bits", Input).value, "act bits", int)
        act_sa = self.query_one("#act-sa", Checkbox).value
        if group in ("block", "tile") and block is None:
            raise SwtuiError(f"{group} grouping needs a size")
        if act_sa and not act_bits:
            raise SwtuiError("keeping the super activation needs activation bits")
        cfg = parse_config(QuantConfig(
            method=self.query_one("#method", Select).value, bits=self.initial["bits"] if bits is None else bits,
            group=group, block=block if group in ("block", "tile") else None,
            clip_z=_optional_number(self.query_one("#clip", Input).value, "clip z"),
            keep_super_weights=self.query_one("#keep", Checkbox).value, act_bits=act_bits,
            act_site=self.query_one("#act-site", Select).value, act_sa=act_sa))
        return self.query_one("#name", Input).value.strip() or cfg.describe(), cfg

    def validate(self) -> tuple[str, QuantConfig] | None:
        error = self.query_one("#form-error", Static)
        try:
            name, cfg = self.config()
        except SwtuiError as exc:
            error.update(str(exc))
            error.add_class("-error")
            for button in self.query(Button):
                button.disabled = True
            return None
        error.update(f"✓ {cfg.describe()}")
        confound = quant_confound(self.source, cfg)
        self.query_one("#form-source", Static).update(f"⚠ {confound}" if confound else "")
        error.remove_class("-error")
        self.query_one("#replace", Button).disabled = False
        self.query_one("#variant", Button).disabled = not self.can_add
        return name, cfg

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.validate()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.validate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        result = self.validate()
        if result is not None:
            self.dismiss((event.button.id, *result))

    def action_cancel(self) -> None:
        self.dismiss(None)
