"""The apps the TUI tests open: on the recorded engine (tests/tui, no torch) and on a real engine
with a tiny planted model (tests/e2e). Imports happen inside, so importing this module costs
nothing and pulls in no torch."""


def fake_app(**kw):
    """The app on the fake engine that replays the demo recording."""
    from swtui.tui.app import SwtuiApp

    from support.fake_engine import FakeEngine

    return SwtuiApp(engine=FakeEngine, **kw)


def tiny_app(arch: str = "llama", max_new_tokens: int = 4, **kw):
    """The app on a real engine over the planted tiny `arch` whose head needs its super activation
    (`builders.tiny_needing_its_sa`): pruning the planted weight hurts, as on a real model."""
    from swtui.tui.app import SwtuiApp

    from support.builders import tiny_needing_its_sa

    return SwtuiApp(session=tiny_needing_its_sa(arch), max_new_tokens=max_new_tokens, **kw)


def loading_app(source: str = "tiny:llama", max_new_tokens: int = 6, **kw):
    """The app that loads `source` itself (CPU, float32), as `swtui SOURCE` does."""
    from swtui.tui.app import SwtuiApp

    from support.builders import CPU

    return SwtuiApp(source, load_options=CPU, max_new_tokens=max_new_tokens, **kw)
