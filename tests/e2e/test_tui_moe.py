"""A mixture of experts in the inspector, on the real engine (tiny OLMoE): the table names the
planted weight's expert, E opens the selected layer's routed experts, enter names one's spike."""

from swtui.tui.app import SwtuiApp
from swtui.tui.widgets.detail import LayerDetail
from swtui.tui.widgets.sw_table import SuperWeightTable

from support.builders import CPU
from support.pilot import settle

SW = (1, 5, 17, 2)  # tiny.Plant: layer 1, row 5, col 17, expert 2


async def test_experts_of_the_selected_layer_and_naming_an_experts_spike():
    app = SwtuiApp("tiny:olmoe", load_options=CPU, max_new_tokens=4, eval_text="The cat sat on the mat. " * 60)
    async with app.run_test(size=(110, 34)) as pilot:
        await settle(pilot, app)
        main = app.main
        assert SW in [r.key for r in main.rows]
        table = app.query_one(SuperWeightTable)
        assert table.cell_text(main.rows[0].key, "layer") == "1·e2"  # the table writes the expert with the layer
        main._select_layer(1)
        assert main.layer_stats[1].expert == 2  # the chart's layer: the max over its experts
        await pilot.pause()
        detail = app.query_one(LayerDetail).layer_text().plain  # below the evidence, where the pane has room
        assert "expert 2 of" in detail and "W_e2[5, 17] = 6" in detail  # the spiking expert's weight
        await pilot.press("E")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "ExpertsScreen"
        routed = {r[0]: r for r in main.layer_stats[1].experts}
        assert screen.rows[0][0] == 2 and len(screen.rows) == len(routed)  # largest output first
        other = screen.rows[1]
        await pilot.press("down", "enter")
        await settle(pilot, app)
        assert app.screen is main
        assert (1, other[3], other[6], other[0]) in [r.key for r in main.rows]  # that expert's spike, named
        await pilot.press("q")
        await pilot.pause()
    assert app._exception is None and app.return_code == 0
