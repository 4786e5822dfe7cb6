"""Keys whose effect is the real engine's arithmetic, on a tiny model whose head needs its super
activation: z (the activation ablation) and B (the block-size sweep). The mission keys are in
tests/tui/test_mission_keys.py."""

from swtui.core.engine import protocol as ev
from swtui.tui.screens.sweep import SweepScreen
from swtui.tui.widgets.status import StatusBar
from swtui.tui.widgets.sweep_chart import SweepChart

from support.apps import tiny_app
from support.pilot import settle


async def test_z_zeroes_the_selected_layers_write_and_again_undoes_it():
    app = tiny_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        status = app.query_one(StatusBar)
        assert status.edits == 0
        await pilot.press("z")
        await settle(pilot, app)
        assert app.engine.session.zero_writes == {(1, 5)} and status.edits == 1
        done = app.events_seen.of(ev.Measured)[-1]
        assert done.metrics["current"].perplexity > 1.5 * done.metrics["base"].perplexity  # the head needs it
        await pilot.press("z")
        await settle(pilot, app)
        assert app.engine.session.zero_writes == set() and status.edits == 0


async def test_B_draws_naive_and_sw_aware_bars_by_block_size():
    app = tiny_app()
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("B")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, SweepScreen) and screen.kind == "quant" and screen.state == "done"
        assert [r.label for r in screen.rows] == ["64", "256", "1024", "4096", "16384", "65536", "tensor"]
        assert all(r.confound is None and r.sw_aware_vs_naive.tokens > 0 for r in screen.rows)  # a float source
        chart = str(screen.query_one(SweepChart).render())
        assert "tensor naive" in chart and "tensor SW-aware" in chart and "log axis" in chart
        assert screen.meta.held_out == ((1, 5, 17),) and app.engine.session.quant_config is None
