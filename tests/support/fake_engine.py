"""A fake engine that replays a recorded session: the TUI tested without torch, fast.

The recording (`recordings/demo.json`, made by `tests/record_demo_events.py` from the real engine
on the demo model) is a list of steps: a request and the events the engine emitted for it. The
fake has the Engine's public interface; `start()` replays the load step, `submit(request)` the
next unused step whose request equals it (as plain data): first looking after the step replayed
last, since a step's events depend on the state the steps before it left, then from the start.
A request with no recording becomes a `Failed` event naming it, so a test that presses an
unrecorded key fails loudly.

`hold()` makes the next replay stop after its first streamed token, as if the model were still
generating; `cancel()` then ends it the way the engine's cancellation does (the generation so far,
marked cancelled, and a notice).
"""

from __future__ import annotations

import json
from pathlib import Path

from swtui.core.engine import protocol as ev
from swtui.core.engine import wire

RECORDINGS = Path(__file__).resolve().parents[1] / "tui" / "recordings"


def load_recording(name: str = "demo") -> list[dict]:
    return json.loads((RECORDINGS / f"{name}.json").read_text())["steps"]


def _identity(data: dict) -> str:
    return json.dumps({k: v for k, v in data.items() if k != "svg"}, sort_keys=True)


class FakeEngine:
    def __init__(self, emit, steps: list[dict] | None = None) -> None:
        self.emit = emit
        self.steps = steps if steps is not None else load_recording()
        self.used: set[int] = set()
        self.position = 0  # the step replayed last
        self.submitted: list[ev.Request] = []
        self.cancelled = 0
        self.stopped = False
        self._hold = False
        self._held: list[ev.Event] | None = None
        self._streamed: dict = {}

    # -- the Engine's public interface ------------------------------------------------------------
    def start(self) -> None:
        self._replay(self.steps[0]["events"])
        self.used.add(0)

    def submit(self, request: ev.Request) -> None:
        self.submitted.append(request)
        wanted = _identity(wire.to_data(request))
        order = list(range(self.position + 1, len(self.steps))) + list(range(1, self.position + 1))
        for i in order:
            step = self.steps[i]
            if i not in self.used and _identity(step["request"]) == wanted:
                self.used.add(i)
                self.position = i
                self._replay(step["events"])
                return
        self.emit(ev.Failed("not recorded", f"the fake engine has no recording of {request}"))

    def cancel(self) -> None:
        self.cancelled += 1
        if self._held is None:
            return
        self._held = None
        self.emit(ev.GenerationDone(dict(self._streamed), None, True, cancelled=True))
        self.emit(ev.Notice("refresh: cancelled"))
        self.emit(ev.Busy(False, ""))

    def stop(self, timeout: float = 2.0) -> bool:
        self.stopped = True
        return True

    @property
    def idle(self) -> bool:
        return self._held is None

    @property
    def busy(self) -> bool:
        return self._held is not None

    def wait_idle(self, timeout: float = 60.0, settle: float = 0.2) -> bool:
        return self.idle

    # -- test controls ----------------------------------------------------------------------------
    def hold(self) -> None:
        """The next replay pauses after its first streamed token (see `cancel`)."""
        self._hold = True

    def step_of(self, request_type: str) -> dict:
        """The first recorded step of a request type (tests read what it will show)."""
        return next(s for s in self.steps if s["request"] and s["request"]["type"] == request_type)

    def _replay(self, events: list[dict]) -> None:
        for i, data in enumerate(events):
            event = wire.from_data(data)
            self.emit(event)
            if isinstance(event, ev.TokenStreamed):
                self._streamed[event.variant] = event.text
                if self._hold:
                    self._hold = False
                    self._held = [wire.from_data(d) for d in events[i + 1:]]
                    return
