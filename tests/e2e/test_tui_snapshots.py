"""Snapshot tests (pytest-textual-snapshot) on the deterministic tiny planted model."""

from swtui.tui.app import SwtuiApp
from tui_helpers import settle
from swtui_testing import CPU


def make_app():
    # the same factory the CLI uses, on a model that is identical on every run
    return SwtuiApp("tiny:llama", load_options=CPU, max_new_tokens=6, theme="swtui-dark")


async def _after_detection(pilot):
    await settle(pilot, pilot.app)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


async def _help(pilot):
    await _after_detection(pilot)
    await pilot.press("f1")
    await pilot.pause(0.2)


def test_main_screen_after_detection(snap_compare):
    assert snap_compare(make_app(), terminal_size=(100, 32), run_before=_after_detection)


def test_main_screen_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_after_detection)


def test_help_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=(100, 32), run_before=_help)


async def _groups(pilot):
    await _after_detection(pilot)
    await pilot.press("w")
    await pilot.pause(0.2)


def test_groups_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=(100, 32), run_before=_groups)


async def _compare(pilot):
    await _after_detection(pilot)
    await pilot.press("C")
    await settle(pilot, pilot.app)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


async def _form_invalid(pilot):
    await _after_detection(pilot)
    await pilot.press("F")
    await pilot.pause(0.2)
    pilot.app.screen.query_one("#clip").value = "-3"
    await pilot.pause(0.2)


async def _scale_sweep(pilot):
    await _after_detection(pilot)
    await pilot.press("S")
    await settle(pilot, pilot.app)
    await pilot.pause(0.1)


def test_compare_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 32), run_before=_compare)


def test_quant_form_with_an_error(snap_compare):
    assert snap_compare(make_app(), terminal_size=(110, 32), run_before=_form_invalid)


def test_scale_sweep_chart(snap_compare):
    assert snap_compare(make_app(), terminal_size=(100, 32), run_before=_scale_sweep)
