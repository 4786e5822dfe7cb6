"""The inspector is interactive from the first seconds: chart before detection, candidates one by one,
esc cancels detection, a failed load exits with code 2, and `q` gives the terminal back at once."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from swtui.core.engine import protocol as ev
from swtui.core.model.tiny import Plant
from swtui.tui.app import SwtuiApp
from swtui.tui.widgets.sw_table import SuperWeightTable
from support.builders import CPU, tiny_llama_with_plants
from support.pilot import settle, wait_for


def two_plant_session():
    """A tiny 8-layer Llama with super weights planted at layers 1 and 4: two detection rounds."""
    return tiny_llama_with_plants(Plant(layer=1, row=5, col=17), Plant(layer=4, row=9, col=30, value=8.0, gain=30.0))


@pytest.fixture
def slow_probe(monkeypatch):
    """Every probe after the first takes 0.4 s longer: detection is slow, the first chart is not."""
    import swtui.core.detection.detect as detect

    real = detect.run_probe
    calls = {"n": 0}

    def slow(*a, **k):
        calls["n"] += 1
        if calls["n"] > 1:
            time.sleep(0.4)
        return real(*a, **k)

    monkeypatch.setattr(detect, "run_probe", slow)
    return calls


def kinds(app):
    return [type(e).__name__ for e in app.events_seen]


async def test_chart_before_detection_and_candidates_one_by_one(slow_probe):
    app = SwtuiApp(session=two_plant_session(), max_new_tokens=4)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        seen = list(app.events_seen)
        first_chart = next(i for i, e in enumerate(seen) if isinstance(e, ev.ProbeDone))
        done = next(i for i, e in enumerate(seen) if isinstance(e, ev.DetectionDone))
        assert first_chart < done
        # the table grows one candidate at a time, each first marked as being measured
        counts = [len(e.super_weights) for e in seen[first_chart:done] if isinstance(e, ev.StateChanged)]
        assert counts[:2] == [1, 2], counts
        first = next(e for e in seen if isinstance(e, ev.StateChanged) and e.super_weights)
        assert first.super_weights[0].measuring and first.super_weights[0].state == "measuring…"
        assert [r.key for r in app.main.rows] == [(1, 5, 17), (4, 9, 30)]
        assert not any(r.measuring for r in app.main.rows)


async def test_escape_cancels_detection_and_the_app_stays_usable(slow_probe):
    app = SwtuiApp(session=two_plant_session(), max_new_tokens=4)
    async with app.run_test(size=(100, 32)) as pilot:
        # esc once the first candidate is listed (the chart comes first, then the channel search)
        await wait_for(pilot, lambda: any(isinstance(e, ev.StateChanged) and e.super_weights
                                          for e in app.events_seen))
        await pilot.press("escape")
        await settle(pilot, app)
        assert "DetectionDone" not in kinds(app)
        assert any(isinstance(e, ev.Notice) and "cancelled" in e.message for e in app.events_seen)
        assert app.engine.session.ledger.count == 0  # detection's temporary zeroing is undone
        n = len(app.events_seen)
        await pilot.press("g")  # still works
        await settle(pilot, app)
        assert any(isinstance(e, ev.GenerationDone) and not e.cancelled for e in app.events_seen.since(n))
        table = app.query_one(SuperWeightTable)
        assert table.row_count >= 1  # what was found before esc stays listed


async def test_failed_load_exits_with_code_2_and_the_message():
    app = SwtuiApp("/no/such/model", load_options=CPU)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.load_error is not None, timeout=30)
    assert app.return_code == 2
    assert app.load_error == "swtui: could not load the model: no such file or directory: /no/such/model"


def _read_until(fd, needle: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
    return buf


@pytest.mark.demo
def test_real_terminal_q_ends_the_process_within_a_second():
    """In a real pseudo-terminal: the demo inspector draws its chart, `q` ends the process in < 1 s."""
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    proc = subprocess.Popen([sys.executable, "-m", "swtui", "--device", "cpu"], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    try:
        out = _read_until(master, b"spike threshold", 120)
        assert b"spike threshold" in out, out[-500:]
        t = time.monotonic()
        os.write(master, b"q")
        # a terminal keeps reading what the app draws: an undrained pty would block the app's writes
        while proc.poll() is None and time.monotonic() - t < 5:
            _read_until(master, b"\0never\0", 0.005)
        elapsed = time.monotonic() - t
        assert proc.returncode == 0 and elapsed < 1.0, elapsed
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


async def test_writers_of_one_channel_reach_the_ui_as_a_group():
    """Two layers share channel 5, each alone harmless: the table says "SW group" for both and `w`
    opens the groups view with the group's evidence and verdict; escape closes it."""
    from textual.widgets import DataTable

    from swtui.tui.screens.groups import GroupsScreen
    from swtui.tui.widgets.sw_table import SuperWeightTable
    from support.builders import tiny_llama_writers

    s = tiny_llama_writers((1, (17,), 1.0), (3, (40,), 1.0), shift=0.05)
    app = SwtuiApp(session=s, max_new_tokens=4)
    async with app.run_test(size=(110, 32)) as pilot:
        await settle(pilot, app)
        table = app.query_one(SuperWeightTable)
        verdicts = [table.cell_text(r.key, "verdict") for r in app.main.rows]  # shown or given up at this width
        assert verdicts == ["SW group", "SW group"]
        await pilot.press("w")
        await pilot.pause(0.1)
        assert isinstance(app.screen, GroupsScreen)
        groups = app.screen.query_one(DataTable)
        assert groups.row_count == 1
        (row,) = app.screen.cells  # every figure, in groups.COLUMNS' order (the table shows what fits)
        # channel, massive (peak, layers), signed writers, activation, left, carriers pruned, …, verdict
        assert row[0] == "5" and row[1].endswith("layers") and row[-1] == "super weight group"
        assert "1[5,17] +" in row[2]  # the layer-1 writer carries the activation (layer 3 adds < 5% at the peak)
        assert row[4] == "0%" and row[5].startswith("×") and "[" in row[5]  # nothing left; ratio with interval
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, GroupsScreen)
