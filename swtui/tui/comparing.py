"""The inspector's comparison and sweeps: a controller the main screen owns.

It keeps up to three named variants; `C` compares them (the paper's pair, naive vs
super-outlier-aware RTN per tensor, when none is named), the quantization form adds or replaces,
`S` sweeps the selected super weight's scale and `B` sweeps naive vs SW-aware RTN by block size.
The work runs in the engine's thread; the controller opens the screens, sends the requests and
routes their events (`handlers`) to the screen that shows them. What it needs of its owner is the
`Owner` protocol below, nothing else.
"""

from __future__ import annotations

from typing import Protocol

from swtui.core.engine import protocol as ev
from swtui.core.quant.presets import paper_pair
from swtui.core.quant.config import MAX_VARIANTS, QuantConfig, Variant, quant_confound
from swtui.core.model.source_quant import SourceQuant


class Owner(Protocol):
    """What the controller asks of the screen that owns it."""

    app: object
    held_out: tuple  # the weights "keep super weights" holds out now

    @property
    def source(self) -> SourceQuant: ...

    @property
    def quant_bits(self) -> int: ...

    def submit(self, request: ev.Request) -> None: ...

    def notify(self, message: str, **kwargs) -> None: ...

    def selected_key(self) -> tuple[int, int, int] | None: ...


def _confound_note(confound: str | None) -> str:
    return f"\n⚠ {confound}" if confound else ""


class Comparisons:
    def __init__(self, owner: Owner, variants: list[Variant] | None = None):
        self.owner = owner
        self.variants: list[Variant] = list(variants or [])  # a snapshot brings its own

    @property
    def handlers(self) -> dict:
        """The engine events this controller handles, by type."""
        return {ev.VariantToken: self._on_token, ev.VariantMeasured: self._on_measured,
                ev.ComparisonDone: self._on_comparison_done, ev.SweepRow: self._on_sweep_row,
                ev.SweepDone: self._on_sweep_done}

    def _screen_of(self, cls):
        return next((s for s in reversed(self.owner.app.screen_stack) if isinstance(s, cls)), None)

    # -- variants ---------------------------------------------------------------------------
    def add_variant(self, name: str, config: QuantConfig | None) -> None:
        names = [v.name for v in self.variants]
        if name in names:
            self.variants = [v for v in self.variants if v.name != name]
        elif len(self.variants) >= MAX_VARIANTS:
            dropped = self.variants.pop(0)
            self.owner.notify(f"a comparison holds {MAX_VARIANTS} variants: dropped {dropped.name!r}")
        self.variants.append(Variant(name, config))
        self.owner.notify(f"variant {name!r} added ({len(self.variants)}/{MAX_VARIANTS}); C compares")

    def open_form(self) -> None:
        from swtui.tui.screens.quant_form import QuantForm

        def done(result) -> None:
            if result is None:
                return
            how, name, config = result
            if how == "variant":
                self.add_variant(name, config)
            else:
                self.owner.submit(ev.Quantize(config))

        owner = self.owner
        owner.app.push_screen(QuantForm(QuantConfig(bits=owner.quant_bits), held_out=owner.held_out,
                                        source=owner.source), done)

    def compare(self) -> None:
        if not self.variants:
            self.variants = paper_pair(self.owner.quant_bits)  # naive vs clip + keep SW, same bits and grouping
            self.owner.notify("no variants named yet: comparing the paper's pair (Q → a adds presets, f opens the form)")
        self.run(self.variants)

    def run(self, variants: list[Variant]) -> None:
        from swtui.tui.screens.compare import CompareScreen

        screen = self._screen_of(CompareScreen)
        if screen is None or screen.variants != variants:
            if screen is not None:
                self.owner.app.pop_screen()
            descriptions = {v.name: v.describe() + _confound_note(quant_confound(self.owner.source, v.config))
                            for v in variants}
            self.owner.app.push_screen(CompareScreen(list(variants), descriptions))
        self.owner.submit(ev.Compare(tuple(variants)))

    # -- sweeps -----------------------------------------------------------------------------
    def scale_sweep(self) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        key = self.owner.selected_key()
        if key is None:
            return
        self.owner.app.push_screen(SweepScreen("scale", f"scale sweep of W{list(key)}: perplexity by factor (0 = pruned)"))
        self.owner.submit(ev.Sweep("scale", key=key))

    def quant_sweep(self) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        source = self.owner.source
        request = ev.Sweep("quant", bits=self.owner.quant_bits)
        self.owner.app.push_screen(SweepScreen(
            "quant", f"W{request.bits} RTN by block size: naive vs clip z{request.clip_z:g} + keep SW"
                     + (f" · {source.down_type} source" if source.quantized else ""),
            warning=source.confound(request.bits, None)))
        self.owner.submit(request)

    # -- events from the engine ------------------------------------------------------------------
    def _on_token(self, e: ev.VariantToken) -> None:
        from swtui.tui.screens.compare import CompareScreen

        if screen := self._screen_of(CompareScreen):
            screen.token(e.name, e.text)

    def _on_measured(self, e: ev.VariantMeasured) -> None:
        from swtui.tui.screens.compare import CompareScreen

        if screen := self._screen_of(CompareScreen):
            screen.measured(e.name, e.metrics)

    def _on_comparison_done(self, e: ev.ComparisonDone) -> None:
        from swtui.tui.screens.compare import CompareScreen

        if screen := self._screen_of(CompareScreen):
            screen.finished(e.cancelled)

    def _on_sweep_row(self, e: ev.SweepRow) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        screen = self._screen_of(SweepScreen)
        if screen is not None and screen.kind == e.what:
            screen.add_row(e.row)

    def _on_sweep_done(self, e: ev.SweepDone) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        screen = self._screen_of(SweepScreen)
        if screen is not None and screen.kind == e.what:
            screen.finished(e.rows, e.meta, e.cancelled)
