"""Every mission key, pressed in the inspector, with the visible effect it must have.

The engine is the fake replaying the real engine's events on the demo model (`fake_engine.py`),
so what the screen shows is what the demo model did: pruning layer 11's W[507, 1229] changes the
current generation, restoring brings it back. No torch in this process.
"""

import pytest

from swtui.core.engine import protocol as ev
from swtui.tui.app import SwtuiApp
from swtui.tui.screens.ask import AskDialog
from swtui.tui.screens.help import HelpScreen
from swtui.tui.screens.quant import QuantDialog
from swtui.tui.widgets.chart import LayerSpikeChart
from swtui.tui.widgets.compare import GenerationDiff
from swtui.tui.widgets.status import StatusBar
from swtui.tui.widgets.sw_table import SuperWeightTable

from support.fake_engine import FakeEngine
from support.apps import fake_app
from support.pilot import started, wait_for

SW = (11, 507, 1229)
SIZE = (110, 34)


def cell(app, key, column: str) -> str:
    return app.query_one(SuperWeightTable).cell_text(key, column)  # shown or given up at this width


def generation(app, variant: str) -> str:
    return str(app.query_one(f"#gen-{variant}", GenerationDiff).render())


def recorded_texts(app, request_type: str, index: int = 0) -> dict:
    steps = [s for s in app.engine.steps if s["request"] and s["request"]["type"] == request_type]
    done = [e for e in steps[index]["events"] if e["type"] == "GenerationDone"]
    return done[-1]["texts"]


async def test_load_shows_the_demo_model_its_chart_and_its_super_weight():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.clear_notifications()  # a notice takes the model's details' place while it shows
        await pilot.pause()
        status = str(app.query_one(StatusBar).render())
        assert "SmolLM2" in status and "30 layers" in status
        assert "Q4_1 source" in status  # the source's own grid, beside the model's name
        assert len(app.query_one(LayerSpikeChart).layers) == 30
        assert app.query_one(SuperWeightTable).selected_key() == SW
        assert cell(app, SW, "verdict") == "super weight"


async def test_d_detects_and_names_the_super_weight():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one(LayerSpikeChart).selected = 0
        await pilot.press("d")
        await pilot.pause()
        assert app.query_one(LayerSpikeChart).selected == 11  # detection selects the super weight's layer
        assert any("super weight: layer 11 [507, 1229]" in n.message for n in app.notices)


async def test_click_and_h_select_a_layer_and_n_names_its_spike():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        step = app.engine.step_of("NameSpike")["request"]
        chart = app.query_one(LayerSpikeChart)
        await pilot.click("#chart", offset=(1 + chart.x_of(5) + 1, 3))  # 1 = the border
        assert chart.selected == 5
        await pilot.click("#chart", offset=(1 + 2, 3))  # on the y-axis labels: no layer
        assert chart.selected == 5
        await pilot.press(*["h"] * (5 - step["layer"]))
        assert chart.selected == step["layer"]
        # (the detail pane leads with the selected candidate's evidence; the layer's figures follow where
        # the height allows, so the chart's selection is what says which layer is selected)
        await pilot.press("n")
        assert isinstance(app.screen, AskDialog)
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        key = (step["layer"], step["row"], step["col"])
        assert cell(app, key, "label") == "mine"


async def test_p_prunes_and_the_generations_differ_then_p_puts_it_back():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("p")
        await pilot.pause()
        assert cell(app, SW, "state") == "pruned"
        texts = recorded_texts(app, "Prune")
        assert texts["base"] != texts["current"]
        assert generation(app, "current").startswith(texts["current"][:20])
        assert generation(app, "base") != generation(app, "current")
        await pilot.press("p")
        await pilot.pause()
        assert cell(app, SW, "state") == "original"
        assert generation(app, "base") == generation(app, "current")


async def test_s_scales_after_refusing_a_bad_factor():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("s")
        assert isinstance(app.screen, AskDialog)
        await pilot.press("backspace", "x", "enter")
        assert isinstance(app.screen, AskDialog)  # "x" is refused in the dialog
        assert "number" in str(app.screen.query_one("#ask-error").render())
        await pilot.press("backspace", "2", "enter")
        await pilot.pause()
        assert cell(app, SW, "state") == "scaled ×2"
        await pilot.press("r")
        await pilot.pause()
        assert cell(app, SW, "state") == "original"


async def test_a_restores_the_super_activation_and_R_restores_all():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        status = app.query_one(StatusBar)
        await pilot.press("a")
        await pilot.pause()
        assert cell(app, SW, "state") == "original + SA restored"
        await pilot.press("p")
        await pilot.pause()
        assert cell(app, SW, "state") == "pruned + SA restored" and status.edits == 2
        await pilot.press("R")
        await pilot.pause()
        assert cell(app, SW, "state") == "original" and status.edits == 0
        assert "0 edits" in str(status.render())


async def test_g_regenerates():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.query_one("#gen-current", GenerationDiff).show("")
        await pilot.press("g")
        await pilot.pause()
        assert generation(app, "current") == recorded_texts(app, "Refresh")["current"]
        assert [type(r).__name__ for r in app.engine.submitted] == ["Refresh"]


async def test_e_edits_the_prompt_and_the_generation_follows():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("e")
        assert isinstance(app.screen, AskDialog)
        await pilot.press("end", *["backspace"] * len("France is"))
        await pilot.press(*"Italy is", "enter")
        await pilot.pause()
        assert "The capital of Italy is" in str(app.query_one("#prompt-line").render())
        assert generation(app, "base") == recorded_texts(app, "SetPrompt")["base"]
        assert "Rome" in generation(app, "base")


async def test_Q_applies_a_quantization_preset():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("Q")
        assert isinstance(app.screen, QuantDialog)
        await pilot.press("down", "enter")
        await pilot.pause()
        # the demo is a Q4_1 GGUF: the presets quantize one bit below its grid (W4 would reproduce it)
        assert "RTN W3" in app.query_one(StatusBar).quant_mode
        assert app.engine.submitted[-1] == ev.Quantize(ev.QuantConfig(bits=3, group="block", block=4096))


async def test_x_exports_a_snapshot():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("x")
        await pilot.pause()
        request = app.engine.submitted[-1]
        assert isinstance(request, ev.Export) and request.svg.startswith("<svg")  # with the screen drawn
        assert any(n.title == "Exported" and "snapshots/" in n.message for n in app.notices)


async def test_L_and_v_change_the_chart():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        chart = app.query_one(LayerSpikeChart)
        log_lines = [chart.render_line(y).text for y in range(chart.size.height)]
        await pilot.press("L")
        assert not chart.log_scale
        assert [chart.render_line(y).text for y in range(chart.size.height)] != log_lines
        await pilot.press("v")
        assert chart.view == "residual"
        assert "residual" in str(chart.border_title)


async def test_t_changes_the_theme():
    app = fake_app(theme="no-such-theme")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        before = app.theme
        assert before == "swtui-dark"  # the default, after saying so
        assert any("'no-such-theme' does not exist" in n.message for n in app.notices)
        background = app.screen.styles.background
        await pilot.press("t")
        await pilot.pause()
        assert app.theme != before
        assert app.screen.styles.background != background  # the colours come from the theme
        assert any(f"theme: {app.theme}" in n.message for n in app.notices)


async def test_esc_cancels_a_generation_in_flight():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.engine.hold()
        await pilot.press("g")
        await pilot.pause()
        partial = generation(app, "current")
        assert app.engine.busy
        await pilot.press("escape")
        await pilot.pause()
        assert app.engine.cancelled == 1 and app.engine.idle
        assert generation(app, "current") == partial  # what streamed stays; nothing more arrives
        assert any("cancelled" in n.message for n in app.notices)
        assert app.query_one(StatusBar).busy == ""


async def test_question_mark_opens_help_and_ctrl_p_the_palette():
    from textual.command import CommandPalette

    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is app.main
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"prune")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.main and cell(app, SW, "state") == "pruned"


async def test_q_quits_and_stops_the_engine():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("q")
        await pilot.pause()
    assert app.engine.stopped and app.return_code == 0


@pytest.mark.parametrize("key", list("npsraz"))
async def test_keys_that_need_a_selection_say_so_before_there_is_one(key):
    steps = FakeEngine(None).steps
    # the load without its detection: no probe, no super weight yet
    load = [e for e in steps[0]["events"] if e["type"] in ("Busy", "Loaded", "Progress")]

    def engine(emit):
        return FakeEngine(emit, [{"request": None, "events": load}] + steps[1:])

    app = SwtuiApp(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press(key)
        await pilot.pause()
        assert app.screen is app.main  # no dialog opened
        assert app.engine.submitted == []
        assert any(("no super weight selected" in n.message or "no probe yet" in n.message)
                   for n in app.notices)


async def test_the_form_lists_what_keep_sw_holds_out_and_warns_about_the_source_grid():
    from textual.widgets import Input, Static

    from swtui.tui.screens.quant_form import QuantForm

    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, QuantForm) and app.screen.query("#form-held"))
        form = app.screen
        held = str(form.query_one("#form-held", Static).render())
        assert "holds out" in held and "11[507,1229]" in held  # the engine's set, as the recording says
        assert form.query_one("#bits", Input).value == "3"  # one bit below the Q4_1 source
        assert str(form.query_one("#form-source", Static).render()) == ""  # W3 quantizes for real
        form.query_one("#bits", Input).value = "4"
        await pilot.pause(0.1)
        warning = str(form.query_one("#form-source", Static).render())
        assert "already Q4_1" in warning and "compound" in warning


async def test_the_form_writes_a_fused_expert_key_it_holds_out():
    from textual.widgets import Static

    from swtui.tui.screens.quant_form import QuantForm

    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.push_screen(QuantForm(held_out=((11, 507, 1229), (1, 940, 711, 68))))
        await wait_for(pilot, lambda: isinstance(app.screen, QuantForm) and app.screen.query("#form-held"))
        held = str(app.screen.query_one("#form-held", Static).render())
        assert "holds out 2: 11[507,1229], 1[940,711]·e68" in held
