"""Snapshots of what only the real engine draws here (a comparison, a sweep), on a tiny planted
Qwen2 whose head needs its super activation (`tiny_needing_its_sa`): pruning the super weight
raises perplexity (×0 ≈ 1.2e4 against 356 unedited) and super-weight-aware W4 RTN beats naive W4
(×1.08 against ×2.06), as on a real model, so the pictures read the right way round (the planted
tiny Llama's perplexity fell when pruned; with its head damped, SW-aware W4 lost to naive). Every
other dialog and state is in tests/tui/test_screens.py, from recorded events."""

import pytest

from support.apps import tiny_app
from support.pilot import settle


def make_app():
    # a model that is identical on every run (CPU, float32), on which pruning the super weight hurts
    return tiny_app("qwen2", max_new_tokens=6, theme="swtui-dark")


async def _after_detection(pilot):
    await settle(pilot, pilot.app)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


async def _compare(pilot):
    await _after_detection(pilot)
    await pilot.press("C")
    await settle(pilot, pilot.app)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


async def _scale_sweep(pilot):
    await _after_detection(pilot)
    await pilot.press("S")
    await settle(pilot, pilot.app)
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", [(80, 24), (110, 34)], ids="{0[0]}x{0[1]}".format)
def test_compare_screen(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_compare)


def test_scale_sweep_chart(snap_compare):
    assert snap_compare(make_app(), terminal_size=(100, 32), run_before=_scale_sweep)
