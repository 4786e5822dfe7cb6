"""Every key on every screen, on the fake engine: each binding pressed on each screen it belongs to,
then a seeded random walk over whatever screen is on top. After every key the app must be alive
(no exception), its screen stack sane and its status idle once the engine is; `q` still exits 0.

The keys are collected, not listed: the action registry, each screen class's BINDINGS and what is
bound live once a screen is open (footer included) — a new binding or screen is covered (a screen
without a route in support.keys.ROUTES fails `test_every_screen_has_a_route`). The screen → owner
messages (compare's run again, export, cancel on leaving) are checked by their effect on the engine.
"""

from swtui.core.engine import protocol as ev
from swtui.tui import messages
from swtui.tui.app import SwtuiApp
from swtui.tui.screens.ask import AskDialog
from swtui.tui.screens.main import MainScreen

from support.apps import fake_app
from support.keys import KeyLog, every_key_on_every_screen, press, random_walk, unrouted_screens
from support.pilot import started

SIZE = (110, 34)  # the terminal; the walk runs at 80×24, the smallest layout we keep usable
WALK_SIZE = (80, 24)
SEED = 22  # issue 22
WALK = 320


def test_every_screen_has_a_route():
    assert unrouted_screens() == []


def test_every_message_a_screen_posts_has_a_handler():
    """A message nobody handles is dropped silently: each one of messages.py has its handler."""
    from textual.message import Message

    posted = [cls for cls in vars(messages).values()
              if isinstance(cls, type) and issubclass(cls, Message) and cls.__module__ == messages.__name__]
    assert len(posted) >= 4
    missing = [cls.__name__ for cls in posted
               if not any(hasattr(owner, cls.handler_name) for owner in (SwtuiApp, MainScreen))]
    assert missing == []


def _count(app, kind) -> int:
    return sum(isinstance(r, kind) for r in app.engine.submitted)


def expectations(app):
    """The effect of the keys whose work is the owner's (asked by message)."""
    def expect(route: str, key: str, before):
        state = (_count(app, ev.Compare), _count(app, ev.Export), app.engine.cancelled)
        if before is None:
            return state
        compares, exports, cancels = before
        where = f"{key!r} on {route}"
        if route == "compare" and key == "r":
            assert state[0] == compares + 1, f"{where} did not run the comparison again"
            assert type(app.screen).__name__ == "CompareScreen", where
        if route in ("compare", "scale sweep", "block sweep") and key == "x":
            assert state[1] == exports + 1, f"{where} exported nothing"
            assert app.engine.submitted[-1].svg.startswith("<svg"), where
        if route in ("compare", "scale sweep", "block sweep") and key == "escape":
            # the fake has no recording of these: they never finish, so leaving cancels them
            assert state[2] == cancels + 1, f"{where} left a running job behind"
            assert app.screen is app.main, where
        return None

    return expect


async def test_every_binding_on_every_screen_in_sequence(capsys):
    app = fake_app()
    log = KeyLog()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await every_key_on_every_screen(pilot, app, log, expect=expectations(app))
        # the snapshot's "open anyway?" question (asked on a weight hash mismatch): refused, then y
        app._ask_open_anyway("weights differ; details")
        await pilot.pause()
        assert isinstance(app.screen, AskDialog)
        for key in ("x", "enter", "backspace", "y", "enter"):
            await press(pilot, app, key, log, "the snapshot's question")
        assert app.screen is app.main and isinstance(app.engine.submitted[-1], ev.ApplySnapshot)
        await quit_and_check(pilot, app, log)
    with capsys.disabled():
        print(f"\n{log.summary('every key, in sequence')}")
    assert len(log.by_screen) >= 13


async def quit_and_check(pilot, app, log) -> None:
    """q, the last key of every walk: the app exits 0 with no exception and the engine stopped."""
    log.pressed += 1
    await pilot.press("q")
    await pilot.pause()
    assert app._exception is None and app.return_code == 0 and app.engine.stopped


async def test_a_seeded_random_walk_over_every_screen(capsys):
    app = fake_app()
    log = KeyLog()
    async with app.run_test(size=WALK_SIZE) as pilot:
        await started(pilot, app)
        await random_walk(pilot, app, log, WALK, SEED)
        await quit_and_check(pilot, app, log)
    with capsys.disabled():
        print(f"\n{log.summary(f'random walk, seed {SEED}')}")
    assert log.pressed >= WALK and len(log.by_screen) >= 6
