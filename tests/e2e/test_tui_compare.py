"""The side-by-side comparison, the quantization form, sweeps and their snapshots, in the app."""

import json

from textual.widgets import Button, Checkbox, Input, Static

from swtui.core.engine import protocol as ev
from swtui.core.quant.presets import paper_pair
from swtui.core.evidence.variants import compare
from swtui.tui.app import SwtuiApp
from swtui.tui.evidence_text import printable, sig
from swtui.tui.screens.compare import CompareScreen
from swtui.tui.screens.quant_form import QuantForm
from swtui.tui.screens.sweep import SweepScreen
from swtui.tui.widgets.sweep_chart import SweepChart

from support.apps import tiny_app
from support.builders import CPU
from support.pilot import settle

DEFAULT_VARIANTS = paper_pair(4)  # tiny:llama is a float model: the paper's W4


def _text(widget) -> str:
    return str(widget.render())


async def test_compare_shows_the_baseline_and_each_variant_with_its_own_figures():
    app = tiny_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("C")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.names == ["baseline"] + [v.name for v in DEFAULT_VARIANTS]
        done = [e for e in app.events_seen if isinstance(e, ev.ComparisonDone)][-1]
        assert not done.cancelled and list(done.results) == screen.names
        # the figures are those of a solo run of each configuration
        solo = compare(app.engine.session, DEFAULT_VARIANTS, app.engine.prompt, 4)
        for i, name in enumerate(screen.names):
            column = screen.query_one(f"#variant-{i}")
            metrics = _text(column.query_one(".compare-metrics", Static))
            assert f"perplexity {sig(solo[name].perplexity, 4)}" in metrics, (name, metrics)
            assert _text(column.query_one(".compare-generation", Static)) == printable(solo[name].generation)
        naive = screen.query_one("#variant-1").query_one(".compare-metrics", Static)
        assert "×" in _text(naive) and solo["W4 per tensor, naive"].perplexity != solo["baseline"].perplexity
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, CompareScreen)


async def test_the_form_rejects_bad_input_and_adds_a_variant():
    app = tiny_app(detect_on_load=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("F")
        await pilot.pause(0.2)
        form = app.screen
        assert isinstance(form, QuantForm)
        form.query_one("#bits", Input).value = "1"
        await pilot.pause(0.1)
        error = form.query_one("#form-error", Static)
        assert "bits" in _text(error) and error.has_class("-error")
        assert all(b.disabled for b in form.query(Button))
        form.query_one("#bits", Input).value = "3"
        form.query_one("#clip", Input).value = "9"
        form.query_one("#keep", Checkbox).value = True
        form.query_one("#name", Input).value = "mine"
        await pilot.pause(0.1)
        assert _text(error) == "✓ RTN W3 per tensor clip z9 +SW kept" and not error.has_class("-error")
        await pilot.click("#variant")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, QuantForm)
        (variant,) = app.main.variants
        assert variant.name == "mine" and variant.config.bits == 3
        assert variant.config.clip_z == 9.0 and variant.config.keep_super_weights is True


async def test_the_form_can_replace_the_current_quantization():
    app = tiny_app(detect_on_load=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("F")
        await pilot.pause(0.2)
        app.screen.query_one("#block", Input).value = "64"
        await pilot.pause(0.05)
        from textual.widgets import Select

        app.screen.query_one("#group", Select).value = "block"
        await pilot.pause(0.1)
        await pilot.click("#replace")
        await settle(pilot, app)
        assert app.engine.session.quant_label == "RTN W4 block 64" and app.main.variants == []


async def test_presets_are_added_as_variants_from_the_quant_dialog():
    app = tiny_app(detect_on_load=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("Q", "down", "down", "a")
        await pilot.pause(0.2)
        assert [v.name for v in app.main.variants] == ["RTN W4, blocks of 4096, clip z9 + keep SW"]
        assert app.engine.session.quant_label == "full precision"  # adding a variant applies nothing


async def test_scale_sweep_is_drawn_row_by_row():
    app = tiny_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("S")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, SweepScreen) and screen.state == "done"
        factors = [r.factor for r in screen.rows]
        assert factors == [0.0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0]
        chart = _text(screen.query_one(SweepChart))
        assert "×0 " in chart and "log axis" in chart and "█" in chart
        by = {r.factor: r.perplexity for r in screen.rows}
        assert by[0.0] > 1.5 * by[1.0]  # the planted super weight matters
        assert app.engine.session.ledger.count == 0  # the sweep left no edit behind


async def test_export_records_the_variants_and_reopening_brings_them_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = tiny_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        await pilot.press("C")
        await settle(pilot, app)
        await pilot.press("x")  # from the comparison screen: its picture is the snapshot's screen
        await settle(pilot, app)
        exported = [e for e in app.events_seen if isinstance(e, ev.Exported)]
    folder = tmp_path / exported[-1].path
    data = json.loads((folder / "findings.json").read_text())
    assert [v["name"] for v in data["comparison"]["variants"]] == [v.name for v in DEFAULT_VARIANTS]
    assert set(data["comparison"]["results"]) == {"baseline"} | {v.name for v in DEFAULT_VARIANTS}
    assert "## Quantization variants side by side" in (folder / "report.md").read_text()
    assert "clip z9 + keep SW" in (folder / "screen.svg").read_text().replace("&#160;", " ")  # the comparison drawn
    reopened = SwtuiApp("tiny:llama", load_options=CPU, snapshot=data, snapshot_force=True)
    assert [v.to_dict() for v in reopened.main.variants] == data["comparison"]["variants"]


async def test_esc_drops_a_comparison_still_waiting_for_the_model():
    """The inference thread is held by other work when C is pressed; esc leaves the comparison
    screen and the comparison never runs (a running one stops: see test_variants)."""
    import threading

    app = tiny_app(detect_on_load=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, app)
        before = app.engine.session.current_hash()
        gate = threading.Event()
        app.engine.submit(ev.Call(lambda s: gate.wait(10)))
        await pilot.press("C")
        assert isinstance(app.screen, CompareScreen) and app.screen.status == "measuring…"
        await pilot.press("escape")
        gate.set()
        await settle(pilot, app)
        assert not isinstance(app.screen, CompareScreen)
        assert not [e for e in app.events_seen if isinstance(e, ev.VariantMeasured)]
        # dropped from the queue, or taken with the cancel already set: nothing measured either way
        assert all(e.cancelled and not e.results for e in app.events_seen if isinstance(e, ev.ComparisonDone))
        assert app.engine.session.current_hash() == before and app.engine.session.quant_config is None
