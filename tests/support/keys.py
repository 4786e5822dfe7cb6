"""Every key on every screen (tests/tui/test_every_key.py, tests/e2e/test_every_key_real.py): how
each screen is reached, which keys it declares, and walks that press them all."""

import importlib
import inspect
import pkgutil
import random
import time

#: how each screen is reached from the main screen; a screen class without a route fails
#: `unrouted_screens`, so a new screen cannot escape the every-key tests
ROUTES: dict[str, tuple[str, ...]] = {
    "main": (),
    "help": ("question_mark",),
    "groups": ("w",),
    "quant presets": ("Q",),
    "quant form": ("F",),
    "compare": ("C",),
    "scale sweep": ("S",),
    "block sweep": ("B",),
    "ask: scale factor": ("s",),
    "ask: spike label": ("n",),
    "ask: prompt": ("e",),
    "palette": ("ctrl+p",),
    "experts": ("E",),
}
ROUTE_SCREENS = {"main": "MainScreen", "help": "HelpScreen", "groups": "GroupsScreen",
                 "quant presets": "QuantDialog", "quant form": "QuantForm", "compare": "CompareScreen",
                 "scale sweep": "SweepScreen", "block sweep": "SweepScreen", "ask: scale factor": "AskDialog",
                 "ask: spike label": "AskDialog", "ask: prompt": "AskDialog", "palette": "CommandPalette",
                 "experts": "ExpertsScreen"}
QUIT_ACTIONS = ("quit", "app.quit")


def screen_classes() -> dict[str, type]:
    """Every Screen / ModalScreen class defined under swtui.tui.screens, by name."""
    import swtui.tui.screens as package
    from textual.screen import Screen

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Screen) and cls.__module__ == module.__name__:
                found[name] = cls
    return found


def unrouted_screens() -> list[str]:
    return sorted(set(screen_classes()) - set(ROUTE_SCREENS.values()))


def _keys_of(bindings) -> set[str]:
    keys = set()
    for b in bindings:
        key, action = (b.key, b.action) if hasattr(b, "key") else (b[0], b[1])
        if action not in QUIT_ACTIONS:
            keys |= {k.strip() for k in key.split(",")}
    return keys


def declared_keys(screen_name: str) -> set[str]:
    """The keys a screen class declares (BINDINGS), the action registry's for the main screen, and the
    app-scope keys (which work over every screen); never a key that quits."""
    from textual.command import CommandPalette

    from swtui.tui.actions import ACTIONS

    keys = {k for a in ACTIONS if a.keys and a.method != "quit" and (a.scope == "app" or screen_name == "MainScreen")
            for k in a.keys.split(",")}
    cls = CommandPalette if screen_name == "CommandPalette" else screen_classes()[screen_name]
    return keys | _keys_of(cls.BINDINGS)


def live_keys(app) -> set[str]:
    """The keys bound right now (focused widget, top screen, app): what the footer advertises and more."""
    return {k for k, ab in app.active_bindings.items() if ab.binding.action not in QUIT_ACTIONS}


def top_name(app) -> str:
    screen = app.screen
    name = type(screen).__name__
    if name == "SweepScreen":
        return f"{name}({screen.kind})"
    if name == "AskDialog":  # scale, label, prompt, or the snapshot's question ("weights differ…")
        return f"{name}({screen.question.split()[0].strip(':').lower()})"
    return name


async def drained(pilot, app, timeout: float) -> None:
    """The engine idle (twice in a row) and its Busy(False) drawn; fails when the status stays busy."""
    if app.engine.idle and not app.main.busy and not getattr(app.engine, "session", None):
        return  # a fake engine: it replays synchronously, no thread to race with
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        if app.engine.idle and not app.main.busy:
            quiet += 1
            if quiet >= 2:
                return
        else:
            quiet = 0
        await pilot.pause(0.02)
    raise AssertionError(f"status left busy ({app.main.busy!r}) with the engine idle={app.engine.idle} "
                         f"after {timeout}s")


async def check_alive(pilot, app, where: str, timeout: float = 5.0) -> None:
    """After a key: no exception, the app running, a sane screen stack, the status idle once the engine is."""
    from swtui.tui.widgets.status import StatusBar

    assert app._exception is None, f"{where}: {app._exception!r}"
    assert app.is_running and app.return_code is None, f"{where}: the app stopped"
    stack = app.screen_stack
    assert stack[0] is app.main and stack.count(app.main) == 1, f"{where}: stack {stack}"
    names = [type(s).__name__ for s in stack]
    assert len(stack) <= 5 and len(set(names)) == len(names), f"{where}: stack {names}"
    await drained(pilot, app, timeout)
    assert app._exception is None, f"{where}: {app._exception!r}"
    status = app.main.query_one(StatusBar)
    assert status.busy == "", f"{where}: the status bar says {status.busy!r} with the engine idle"


async def to_main(pilot, app, where: str) -> None:
    for _ in range(6):
        if app.screen is app.main:
            return
        await pilot.press("escape")
    raise AssertionError(f"{where}: escape does not lead back to the main screen (on {top_name(app)})")


class KeyLog:
    """What a run pressed and saw: quoted by the tests' summary line."""

    def __init__(self) -> None:
        self.pressed = 0
        self.by_screen: dict[str, int] = {}

    def saw(self, name: str) -> None:
        self.by_screen[name] = self.by_screen.get(name, 0) + 1

    def summary(self, what: str) -> str:
        screens = ", ".join(f"{n} ×{c}" for n, c in sorted(self.by_screen.items()))
        return f"{what}: {self.pressed} keys pressed, {len(self.by_screen)} screens visited ({screens})"


async def press(pilot, app, key: str, log: KeyLog, where: str, timeout: float = 5.0) -> None:
    log.saw(top_name(app))
    log.pressed += 1
    await pilot.press(key)
    await check_alive(pilot, app, f"{where}: {key!r}", timeout)


async def back_to(pilot, app, screen, where: str) -> bool:
    """Escape from whatever was opened over `screen` (palette, help…); False once `screen` is gone."""
    for _ in range(6):
        if app.screen is screen:
            return True
        if screen not in app.screen_stack:
            return False
        await pilot.press("escape")
    raise AssertionError(f"{where}: escape does not lead back to {type(screen).__name__}")


async def every_key_on_every_screen(pilot, app, log: KeyLog, expect=None, timeout: float = 5.0,
                                    live: bool = True) -> None:
    """Each route's screen opened from the main screen, and each of its keys pressed there: the keys it
    declares (see `declared_keys`) and, with `live`, the ones bound live once it is open (the footer's,
    and its widgets' own, once per screen class). What a key opens over the screen is escaped from; a
    key that closes it (pressed last) has it opened again for the next.
    `expect(route, key, before)` checks a key's effect (`before` from `expect(route, key, None)`)."""
    covered: set[str] = set()
    #: pressed last (escape the very last): they close the screen or open one over it
    leaving = ("ctrl+p", "f1", "question_mark", "enter", "a", "f", "w", "q", "escape")
    for route, opener in ROUTES.items():
        await to_main(pilot, app, route)
        for k in opener:
            await press(pilot, app, k, log, f"opening {route}", timeout)
        want = ROUTE_SCREENS[route]
        assert type(app.screen).__name__ == want, f"{route}: {opener} opened {top_name(app)}"
        target = app.screen
        keys = declared_keys(want)
        if live and want not in covered:  # a widget's own keys (an Input's editing keys…) once per screen class
            keys |= live_keys(app)
            covered.add(want)
        if route == "palette":
            keys.discard("enter")  # enter would run whatever is highlighted
        keys = sorted(keys - set(leaving)) + [k for k in leaving if k in keys]
        for key in keys:
            if not await back_to(pilot, app, target, f"{route} before {key!r}"):
                await to_main(pilot, app, f"{route} before {key!r}")
                for k in opener:
                    await press(pilot, app, k, log, f"reopening {route}", timeout)
                target = app.screen
            before = expect(route, key, None) if expect else None
            await press(pilot, app, key, log, f"on {route}", timeout)
            if expect:
                expect(route, key, before)
    await to_main(pilot, app, "the end of the sequence")


def walk_pool(app) -> list[str]:
    name = type(app.screen).__name__
    keys = declared_keys(name) | live_keys(app)
    if name == "CommandPalette":
        keys = (keys - {"enter"}) | set("lgop")  # a search, never run blind
    from textual.widgets import Input

    if isinstance(app.focused, Input):
        keys |= {"1", "x", "backspace", "enter"}
    return sorted(keys)


async def random_walk(pilot, app, log: KeyLog, presses: int, seed: int, timeout: float = 5.0) -> None:
    """`presses` keys drawn from whatever screen is on top (escape one time in eight)."""
    rng = random.Random(seed)
    for i in range(presses):
        key = "escape" if rng.random() < 0.125 else rng.choice(walk_pool(app))
        await press(pilot, app, key, log, f"walk #{i} (seed {seed}) on {top_name(app)}", timeout)
    await to_main(pilot, app, "the end of the walk")
