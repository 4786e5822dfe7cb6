"""The real engine, driven from a test: an `emit` that collects events, an engine started idle."""

import collections
import threading
import time


class Collector:
    """An engine's `emit`: keeps every event; `wait_for` blocks until one matches."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, pred, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(pred(e) for e in self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = collections.Counter(type(e).__name__ for e in self.events)
                    raise AssertionError(f"no such event; got {dict(seen)}")
                self.cond.wait(left)
        return [e for e in self.events if pred(e)][-1]


def idle_worker(session, **kw):
    """A started engine on `session`, past its load-time refresh; returns (engine, collector)."""
    from swtui.core.engine import protocol as ev
    from swtui.core.engine.engine import Engine

    out = Collector()
    w = Engine(out, None, session=session, detect_on_load=False, max_new_tokens=kw.pop("tokens", 8), **kw)
    w.start()
    out.wait_for(lambda e: isinstance(e, ev.Measured))
    # the refresh's last events (its state, Busy(False)) follow Measured: idle means they are out
    assert w.wait_idle(timeout=60), "the engine did not settle after its first refresh"
    return w, out
