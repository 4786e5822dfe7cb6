"""The inspector's comparison and sweep actions, and the routing of their events to their screens.

A mixin of `MainScreen`: the screen keeps up to three named variants (`self.variants`, Variant dicts);
`C` compares them (the paper's pair, naive vs super-outlier-aware W4 per tensor, when none is
named), the quantization form adds or replaces, `S` sweeps the selected super weight's scale and
`B` sweeps naive vs SW-aware RTN by block size. The work runs in the engine's thread.
"""

from __future__ import annotations

from swtui.core import protocol as ev
from swtui.core.quant_session import describe_config
from swtui.core.variants import MAX_VARIANTS
#: the comparison the paper argues, at the same bits and grouping: naive vs clip + keep SW
DEFAULT_VARIANTS = [
    {"name": "W4 per tensor, naive", "config": {"method": "rtn", "bits": 4, "group": "tensor"}, "with_edits": True},
    {"name": "W4 per tensor, clip z9 + keep SW",
     "config": {"method": "rtn", "bits": 4, "group": "tensor", "clip_z": 9.0, "keep_super_weights": True},
     "with_edits": True},
]


class ComparisonMixin:
    variants: list[dict]

    def _screen_of(self, cls):
        return next((s for s in reversed(self.app.screen_stack) if isinstance(s, cls)), None)

    # -- variants ---------------------------------------------------------------------------
    def add_variant(self, name: str, config: dict | None) -> None:
        names = [v["name"] for v in self.variants]
        if name in names:
            self.variants = [v for v in self.variants if v["name"] != name]
        elif len(self.variants) >= MAX_VARIANTS:
            dropped = self.variants.pop(0)
            self.notify(f"a comparison holds {MAX_VARIANTS} variants: dropped {dropped['name']!r}")
        self.variants.append({"name": name, "config": config, "with_edits": True})
        self.notify(f"variant {name!r} added ({len(self.variants)}/{MAX_VARIANTS}); C compares")

    def action_quant_form(self) -> None:
        from swtui.tui.screens.quant_form import QuantForm

        def done(result) -> None:
            if result is None:
                return
            how, cfg = result
            name = cfg.pop("name")
            if how == "variant":
                self.add_variant(name, cfg)
            else:
                self.submit(ev.Quantize(cfg))

        self.app.push_screen(QuantForm(), done)

    def action_compare(self) -> None:
        if not self.variants:
            self.variants = [dict(v) for v in DEFAULT_VARIANTS]
            self.notify("no variants named yet: comparing the paper's pair (Q → a adds presets, f opens the form)")
        self.run_comparison(self.variants)

    def run_comparison(self, variants: list[dict]) -> None:
        from swtui.tui.screens.compare import CompareScreen

        screen = self._screen_of(CompareScreen)
        if screen is None or screen.variants != variants:
            if screen is not None:
                self.app.pop_screen()
            descriptions = {v["name"]: describe_config(v["config"]) + ("" if v["with_edits"] else ", unedited")
                            for v in variants}
            self.app.push_screen(CompareScreen(list(variants), descriptions))
        self.submit(ev.Compare(tuple(variants)))

    # -- sweeps -----------------------------------------------------------------------------
    def action_scale_sweep(self) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        key = self._selected_key()
        if key is None:
            return
        self.app.push_screen(SweepScreen("scale", f"scale sweep of W{list(key)}: perplexity by factor (0 = pruned)"))
        self.submit(ev.Sweep("scale", key=key))

    def action_quant_sweep(self) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        request = ev.Sweep("quant")
        self.app.push_screen(SweepScreen("quant", f"W{request.bits} RTN by block size: naive vs clip z"
                                              f"{request.clip_z:g} + keep SW"))
        self.submit(request)

    # -- events from the engine ------------------------------------------------------------------
    def handle_comparison(self, event: ev.Event) -> None:
        """Route a comparison's or a sweep's event to its screen, if it is open."""
        handler = {ev.VariantToken: self._on_VariantToken, ev.VariantMeasured: self._on_VariantMeasured,
                   ev.ComparisonDone: self._on_ComparisonDone, ev.SweepRow: self._on_SweepRow,
                   ev.SweepDone: self._on_SweepDone}.get(type(event))
        if handler is not None:
            handler(event)

    def _on_VariantToken(self, e: ev.VariantToken) -> None:
        from swtui.tui.screens.compare import CompareScreen

        if screen := self._screen_of(CompareScreen):
            screen.token(e.name, e.text)

    def _on_VariantMeasured(self, e: ev.VariantMeasured) -> None:
        from swtui.tui.screens.compare import CompareScreen

        if screen := self._screen_of(CompareScreen):
            screen.measured(e.name, e.metrics)

    def _on_ComparisonDone(self, e: ev.ComparisonDone) -> None:
        from swtui.tui.screens.compare import CompareScreen

        if screen := self._screen_of(CompareScreen):
            screen.finished(e.cancelled)

    def _on_SweepRow(self, e: ev.SweepRow) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        screen = self._screen_of(SweepScreen)
        if screen is not None and screen.kind == e.what:
            screen.add_row(e.row)

    def _on_SweepDone(self, e: ev.SweepDone) -> None:
        from swtui.tui.screens.sweep import SweepScreen

        screen = self._screen_of(SweepScreen)
        if screen is not None and screen.kind == e.what:
            screen.finished(e.rows, e.meta, e.cancelled)
