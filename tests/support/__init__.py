"""What the tests share, imported as `support.<module>` (pytest puts tests/ on the path:
`pythonpath` in pyproject.toml).

- `builders`: tiny planted models and sessions, tiny models saved as folders or offloaded.
- `oracle`: swtui's RTN written again from its description, for the exactness tests.
- `engine`: the real engine driven from a test (`Collector`, `idle_worker`).
- `fake_engine`: the recorded engine the TUI suite runs on, without torch.
- `pilot`: waiting on an app under Textual's Pilot (`settle`, `wait_for`, `started`).
- `apps`: the apps the TUI tests open (on the fake engine, on a tiny real one).
- `keys`: every key on every screen: routes, declared keys, the walks.
- `browser`: Chromium for the browser test of `swtui serve` and the README picture.

Nothing here imports torch at import time: tests/tui imports `fake_engine`, `pilot`, `apps` and
`keys` in a process where torch cannot be imported.
"""
