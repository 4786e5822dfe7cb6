"""Snapshots of every dialog and state, drawn from the demo model's recorded events (no torch)."""

import pytest

from swtui.core.engine import protocol as ev
from swtui.tui.app import SwtuiApp
from swtui.tui.screens.ask import AskDialog

from support.fake_engine import FakeEngine, load_recording
from support.pilot import wait_for

SW = (11, 507, 1229)


def app(theme: str = "swtui-dark", recording: str = "demo") -> SwtuiApp:
    steps = load_recording(recording)
    return SwtuiApp(engine=lambda emit: FakeEngine(emit, steps), theme=theme)


async def until(pilot, condition) -> None:
    """Pause until `condition()` holds (a loaded machine may take more than a pause or two)."""
    await wait_for(pilot, condition, timeout=20)
    await pilot.pause()


async def quiet(pilot) -> None:
    """The recorded load and detection drawn, their notifications dismissed."""
    main = pilot.app.main
    await until(pilot, lambda: main.is_mounted and main.rows and main.layer_stats and main.groups and not main.busy)
    pilot.app.clear_notifications()
    await pilot.pause()


async def pruned(pilot) -> None:
    await quiet(pilot)
    await pilot.press("p")
    await quiet(pilot)


SIZES = [(80, 24), (110, 34), (160, 48)]
SMALL = [(80, 24), (110, 34)]
size_id = "{0[0]}x{0[1]}".format


@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_main_screen_after_detection(snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=quiet)


@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_main_screen_after_a_prune(snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=pruned)


@pytest.mark.parametrize("size", SMALL, ids=size_id)
def test_groups_screen(snap_compare, size):
    async def groups(pilot):
        await quiet(pilot)
        await pilot.press("w")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=size, run_before=groups)


def test_quant_form_with_an_error(snap_compare):
    async def form(pilot):
        await quiet(pilot)
        await pilot.press("F")
        await pilot.pause()
        pilot.app.screen.query_one("#clip").value = "-3"
        await pilot.pause()

    assert snap_compare(app(), terminal_size=(110, 34), run_before=form)


def test_pruned_demo_state_with_different_generations(snap_compare):
    async def check(pilot):
        await pruned(pilot)
        main = pilot.app.main
        assert str(main.query_one("#gen-base").render()) != str(main.query_one("#gen-current").render())

    assert snap_compare(app(), terminal_size=(110, 34), run_before=check)


def test_light_theme(snap_compare):
    assert snap_compare(app("swtui-light"), terminal_size=(110, 34), run_before=pruned)


def test_residual_view(snap_compare):
    async def residual(pilot):
        await quiet(pilot)
        await pilot.press("v")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=(110, 34), run_before=residual)


def test_quant_dialog(snap_compare):
    async def quant(pilot):
        await quiet(pilot)
        await pilot.press("Q", "down", "down")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=(110, 34), run_before=quant)


def test_scale_dialog_with_an_error(snap_compare):
    async def scale(pilot):
        await quiet(pilot)
        await pilot.press("s", "backspace", "i", "n", "f", "enter")
        await pilot.pause()

    assert snap_compare(app(), terminal_size=(110, 34), run_before=scale)


def test_an_error_in_the_status_line(snap_compare):
    async def failing(pilot):
        await quiet(pilot)
        pilot.app.engine.submit(ev.NameSpike(99, 0, 0, "out of range"))  # recorded: a real engine error
        await pilot.pause()

    assert snap_compare(app(), terminal_size=(110, 34), run_before=failing)


def test_hash_mismatch_asks_before_opening(snap_compare):
    async def asked(pilot):
        from textual.widgets import Input

        await until(pilot, lambda: isinstance(pilot.app.screen, AskDialog))
        for box in pilot.app.screen.query(Input):  # a blinking cursor made the picture depend on timing
            box.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app(recording="mismatch"), terminal_size=(110, 34), run_before=asked)


@pytest.mark.parametrize("answer, opened", [("y", True), ("n", False)])
async def test_hash_mismatch_answer(answer, opened):
    a = app(recording="mismatch")
    async with a.run_test(size=(110, 34)) as pilot:
        await until(pilot, lambda: isinstance(a.screen, AskDialog))
        await pilot.press("backspace", answer, "enter")
        await pilot.pause()
        assert (ev.ApplySnapshot(force=True) in a.engine.submitted) == opened
        assert a.is_running == opened  # "n" leaves swtui
