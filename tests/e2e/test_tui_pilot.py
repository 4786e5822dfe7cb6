"""Pilot tests on a tiny planted model: keys, clicks, edits, cancel, errors; state via the ledger."""

from swtui.core.engine import protocol as ev
from swtui.core.edits.hooks import count_hooks
from swtui.tui.app import SwtuiApp
from swtui.tui.widgets.chart import LayerSpikeChart
from swtui.tui.widgets.detail import LayerDetail
from swtui.tui.widgets.sw_table import SuperWeightTable
from support.apps import loading_app, tiny_app
from support.pilot import settle, wait_for
from support.builders import CPU

SW = (1, 5, 17)


def make_app(**kw):
    return loading_app("tiny:llama", **kw)


async def test_detect_select_name_prune_restore():

    # a head that needs the planted super activation: pruning it changes the generation
    app = tiny_app("llama", max_new_tokens=6)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        session = app.engine.session
        h0 = session.current_hash()
        chart = app.query_one(LayerSpikeChart)
        assert len(chart.layers) == 4
        # detection selected the planted layer; move away and back by keys
        assert chart.selected == 1
        await pilot.press("h")
        assert chart.selected == 0
        await pilot.press("l", "enter")
        assert app.query_one(LayerDetail).stats.layer == 1
        assert app.query_one(LayerDetail).stats.out_channel == 5
        # the detected weight is in the table
        table = app.query_one(SuperWeightTable)
        assert table.selected_key() == SW
        # prune with p: a new generation, in which baseline and current differ
        seen = len(app.events_seen)
        await pilot.press("p")
        await settle(pilot, app)
        assert session.ledger.edit(SW).op == "prune"
        assert session.ledger.current_value(*SW) == 0.0
        (after,) = [e for e in app.events_seen.since(seen) if isinstance(e, ev.GenerationDone)]
        assert after.texts["base"] != after.texts["current"] and after.diverge_at is not None
        # p again unprunes
        await pilot.press("p")
        await settle(pilot, app)
        assert session.ledger.edit(SW) is None
        # scale with s: invalid input is refused in the dialog, a valid one applied
        await pilot.press("s")
        await pilot.press("end", "backspace", "n", "a", "n", "enter")
        await pilot.pause(0.1)
        assert session.ledger.edit(SW) is None
        for _ in range(3):
            await pilot.press("backspace")
        await pilot.press("0", ".", "5", "enter")
        await settle(pilot, app)
        assert session.ledger.edit(SW).factor == 0.5
        # r restores the selected, R everything, bit-exact
        await pilot.press("r")
        await settle(pilot, app)
        assert session.ledger.count == 0
        await pilot.press("p")
        await settle(pilot, app)
        await pilot.press("R")
        await settle(pilot, app)
        assert session.ledger.count == 0 and session.current_hash() == h0
        assert count_hooks(session.model) == 0


async def test_cancel_generation_and_keys_stay_responsive():
    from textual import events

    app = make_app(detect_on_load=False, max_new_tokens=4)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        app.engine.max_new_tokens = 2000  # long enough to still stream when esc arrives
        app.events_seen.clear()
        # keys are posted directly: pilot.press also waits for the app to go idle, which it
        # does not while tokens stream
        app.post_message(events.Key("g", "g"))
        await wait_for(pilot, lambda: any(isinstance(e, ev.TokenStreamed) for e in app.events_seen))
        chart = app.query_one(LayerSpikeChart)
        chart.focus()
        before = chart.selected
        app.post_message(events.Key("l", "l"))  # keys work while tokens stream
        await wait_for(pilot, lambda: chart.selected == min(before + 1, 3), timeout=5)
        assert not any(isinstance(e, ev.GenerationDone) for e in app.events_seen)  # still streaming
        app.post_message(events.Key("escape", None))
        await settle(pilot, app)
        done = [e for e in app.events_seen if isinstance(e, ev.GenerationDone)]
        assert done and done[-1].cancelled
        assert count_hooks(app.engine.session.model) == 0


async def test_error_in_inference_thread_is_shown_and_state_kept():
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        session = app.engine.session
        h0 = session.current_hash()

        def explode(s):
            s.ledger.prune(*SW)
            s.ledger.restore(*SW)
            raise RuntimeError("injected failure")

        app.engine.submit(ev.Call(explode))
        await settle(pilot, app)
        failed = [e for e in app.events_seen if isinstance(e, ev.Failed)]
        assert failed and "injected failure" in failed[-1].message
        assert session.current_hash() == h0
        # out-of-range coordinates through the UI path: a notification, nothing changes
        app.engine.submit(ev.Prune((9, 0, 0)))
        await settle(pilot, app)
        assert "out of range" in [e for e in app.events_seen if isinstance(e, ev.Failed)][-1].message
        # still usable
        await pilot.press("p")
        await settle(pilot, app)
        assert session.ledger.edit(SW).op == "prune"


async def test_quantization_selector_and_exact_return():
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        session = app.engine.session
        h0 = session.current_hash()
        await pilot.press("Q")
        await pilot.press("down", "enter")  # RTN W4, blocks of 4096
        await settle(pilot, app)
        assert session.ledger.rewritten and session.quant_config["method"] == "rtn"
        assert "RTN W4" in app.query_one("#status").quant_mode
        done = [e for e in app.events_seen if isinstance(e, ev.GenerationDone)][-1]
        assert done.batched is False  # quantized weights: two passes
        await pilot.press("Q", "enter")  # full precision
        await settle(pilot, app)
        assert session.ledger.count == 0 and session.current_hash() == h0
        await pilot.press("Q", *["down"] * 7, "enter")  # LLM.int8
        await settle(pilot, app)
        assert session.ledger.is_packed(0)
        await pilot.press("p")  # packed weights: the layer is re-packed from the pruned pristine tensor
        await settle(pilot, app)
        assert session.ledger.edit(SW).op == "prune" and session.ledger.is_packed(SW[0])
        assert not [e for e in app.events_seen if isinstance(e, ev.Failed)]
        await pilot.press("R")
        await settle(pilot, app)
        assert session.current_hash() == h0


async def test_export_key_writes_a_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        await pilot.press("p")
        await settle(pilot, app)
        await pilot.press("x")
        await settle(pilot, app)
        exported = [e for e in app.events_seen if isinstance(e, ev.Exported)]
        assert exported
    folder = tmp_path / exported[-1].path
    assert {p.name for p in folder.iterdir()} == {"findings.json", "report.md", "screen.svg"}
    from swtui.core.snapshot.snapshot import load_snapshot

    data = load_snapshot(folder)
    assert data["edits"][0]["op"] == "prune" and data["metrics"]["generation"]["current"]


async def test_open_snapshot_with_hash_mismatch_asks_first():
    from support.builders import tiny_session
    from swtui.core.snapshot.snapshot import build_snapshot

    s = tiny_session("llama")
    s.name_super_weight(*SW)
    s.ledger.prune(*SW)
    data = build_snapshot(s, prompt="The capital")
    data["model"]["weights_sha256"] = "0" * 64
    app = SwtuiApp("tiny:llama", load_options=CPU, snapshot=data, max_new_tokens=4)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        assert type(app.screen).__name__ == "AskDialog"  # it asks before re-applying anything
        assert app.engine.session.ledger.count == 0
        await pilot.press("end", "backspace", "y", "enter")
        await settle(pilot, app)
        assert app.engine.session.ledger.edit(SW).op == "prune"


# -- a, n, e on the real engine: the effect shown, and the status bar idle again after each --------
def _cell(app, key, column: str) -> str:
    table = app.query_one(SuperWeightTable)
    return table.cell_text(key, column)  # shown or given up at this width


async def _idle_again(pilot, app, what: str) -> None:
    """The engine settled and the status bar says so (not the request it was busy with)."""
    from swtui.tui.widgets.status import StatusBar

    await settle(pilot, app)
    status = app.query_one(StatusBar)
    for _ in range(40):  # the last events may still be on their way to the screen
        if not status.busy:
            break
        await pilot.pause(0.05)
    assert status.busy == "" and app.main.busy == "", f"after {what} the status bar still says {status.busy!r}"
    assert "idle" in str(status.render()), f"after {what}: {status.render()}"


async def test_a_n_e_on_the_real_engine_and_the_status_bar_idle_after_each():
    from swtui.core.evidence import generation
    from swtui.tui.screens.ask import AskDialog
    from swtui.tui.widgets.status import StatusBar

    app = make_app(max_new_tokens=4)
    async with app.run_test(size=(110, 34)) as pilot:
        await _idle_again(pilot, app, "loading and detection")
        session = app.engine.session
        status = app.query_one(StatusBar)
        assert app.query_one(SuperWeightTable).selected_key() == SW
        # a: the super activation restored, in the table and the status bar's edit count
        await pilot.press("a")
        await _idle_again(pilot, app, "a")
        assert session.sa_restore == {SW} and _cell(app, SW, "state") == "original + SA restored"
        assert status.edits == 1
        await pilot.press("a")
        await _idle_again(pilot, app, "a again")
        assert session.sa_restore == set() and _cell(app, SW, "state") == "original" and status.edits == 0
        # n: name the spike of the layer after the super weight's, with a label
        await pilot.press("l")
        st = app.query_one(LayerDetail).stats
        assert st.layer == SW[0] + 1
        await pilot.press("n")
        assert isinstance(app.screen, AskDialog)
        await pilot.press(*"mine", "enter")
        await _idle_again(pilot, app, "n")
        key = (st.layer, st.out_channel, st.in_channel)
        assert _cell(app, key, "label") == "mine" and session.find_super_weight(key).label == "mine"
        # e: a new prompt, and the generation is the new prompt's
        before = app.engine.prompt
        await pilot.press("e")
        assert isinstance(app.screen, AskDialog)
        await pilot.press("end", *["backspace"] * len(before), *"The capital of Italy is", "enter")
        await _idle_again(pilot, app, "e")
        assert app.engine.prompt == "The capital of Italy is" != before
        assert "The capital of Italy is" in str(app.query_one("#prompt-line").render())
        done = [e for e in app.events_seen if isinstance(e, ev.GenerationDone)][-1]
        assert done.texts == generation.generate(session, "The capital of Italy is", 4)
