"""One action registry feeds the bindings, the palette, the help screen and the README key table;
what cannot apply is dimmed and says why."""

import re
from pathlib import Path

from swtui.tui.actions import ACTIONS, help_rows, palette
from swtui.tui.app import SwtuiApp
from swtui.tui.screens.main import MainScreen

from support.fake_engine import FakeEngine, load_recording

README = Path(__file__).resolve().parents[2] / "README.md"
#: keys the README names that are not bindings of the registry (Textual's own navigation)
NAVIGATION = {"←", "→", "↑", "↓", "enter", "click"}


def _readme_keys() -> set[str]:
    text = README.read_text()
    table = text[text.index("| key | action |"):]
    table = table[:table.index("\n\n")]
    keys = set()
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        for token in re.split(r"\s*(?:,|·| or |/)\s*", first.strip().strip("`")):
            if token:
                keys.add(token.strip("` "))
    return keys


def test_every_action_is_an_action_of_its_scope_and_bound_once():
    owner = {"app": SwtuiApp, "screen": MainScreen}
    for a in ACTIONS:
        assert hasattr(owner[a.scope], f"action_{a.method}"), a.name
    both = SwtuiApp.BINDINGS + MainScreen.BINDINGS
    keys = [k for b in both for k in b.key.split(",")]
    assert len(keys) == len(set(keys))
    assert {b.action for b in both} == {a.name for a in ACTIONS if a.keys and a.method != "command_palette"}


def test_readme_key_table_matches_the_registry():
    shown = {"question_mark": "?", "f1": "F1", "escape": "esc"}
    registry = {shown.get(k, k) for a in ACTIONS for k in a.keys.split(",") if k}
    readme = _readme_keys()
    assert registry - readme == set(), "keys missing from the README table"
    assert readme - registry - NAVIGATION == set(), "README keys no action has"


def test_help_and_palette_come_from_the_registry():
    rows = dict(help_rows())
    assert rows["p"].startswith("zero the selected super weight") and rows["C"].startswith("baseline and up to")
    assert {a.title for a in palette()} >= {"Compare variants side by side", "Writers judged together"}


def before_detection(emit) -> FakeEngine:
    """The demo loaded, nothing probed or detected yet; `d` then replays the recorded detection."""
    steps = load_recording()
    load = [e for e in steps[0]["events"] if e["type"] in ("Busy", "Loaded", "Progress")]
    return FakeEngine(emit, [{"request": None, "events": load}] + steps[1:])


async def test_inapplicable_actions_are_dimmed_say_why_and_do_not_run():
    app = SwtuiApp(engine=before_detection)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        assert app.main.check_action("toggle_prune", ()) is None and app.main.check_action("groups", ()) is None
        assert app.main.check_action("detect", ()) is True
        await pilot.press("p")
        await pilot.pause(0.1)
        assert [n.message for n in app.notices][-1].startswith("no super weight selected")
        await pilot.press("w")
        await pilot.pause(0.1)
        assert [n.message for n in app.notices][-1] == "no candidates judged yet: run detection (d)"
        assert app.engine.submitted == []  # neither reached the engine
        # the palette: dimmed, with the reason as its help
        from swtui.tui.commands import SwtuiCommands

        provider = SwtuiCommands(app.screen)
        hits = [h async for h in provider.discover()]
        prune = next(h for h in hits if str(h.display) == "Prune / unprune selected")
        assert prune.display.style == "dim" and prune.help.startswith("unavailable: no super weight selected")
        await pilot.press("d")
        await pilot.pause()
        assert app.main.check_action("toggle_prune", ()) is True and app.main.check_action("groups", ()) is True
        hits = [h async for h in provider.discover()]
        prune = next(h for h in hits if str(h.display) == "Prune / unprune selected")
        assert prune.display.style == "" and "(p)" in prune.help
