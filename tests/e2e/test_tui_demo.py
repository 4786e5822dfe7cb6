"""End to end on the real demo model: detect, prune, watch generation break, restore exactly."""

import pytest

from swtui.core.engine import protocol as ev
from swtui.tui.app import SwtuiApp
from swtui.tui.widgets.chart import LayerSpikeChart
from swtui.tui.widgets.sw_table import SuperWeightTable
from support.pilot import settle

pytestmark = pytest.mark.demo


def _last(app, kind):
    return [e for e in app.events_seen if isinstance(e, kind)][-1]


async def test_demo_end_to_end(demo_session, demo_detection):
    """Detected super weights (detection itself streams in test_tui_progressive) → p → R."""
    from swtui.core.evidence.metrics import eval_text

    # the perplexity on a tenth of the bundled text: this test reads generations and stopwords
    app = SwtuiApp(session=demo_session, max_new_tokens=10, detect_on_load=False, eval_text=eval_text()[:2000])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, timeout=300)
        h0 = demo_session.current_hash()
        assert app.query_one(SuperWeightTable).selected_key() == (11, 507, 1229)
        assert app.query_one(LayerSpikeChart).selected == 11
        base = _last(app, ev.GenerationDone).texts
        assert base["base"] == base["current"] and "Paris" in base["current"]
        await pilot.press("p")
        await settle(pilot, app, timeout=300)
        pruned = _last(app, ev.GenerationDone)
        assert pruned.texts["current"] != base["current"] and pruned.diverge_at is not None
        sw = _last(app, ev.StopwordsDone)
        assert sw.report.mass["current"] > sw.report.mass["base"]
        probe = _last(app, ev.ProbeDone)
        assert probe.layers[11].out_max < 0.5 * 24000  # the super activation is gone
        await pilot.press("R")
        await settle(pilot, app, timeout=300)
        assert demo_session.current_hash() == h0
        assert _last(app, ev.GenerationDone).texts["current"] == base["current"]
