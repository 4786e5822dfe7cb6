"""One rate limit for whatever streams to a screen: generated text arrives per token, a terminal
(over SSH especially) wants at most ~20 redraws a second."""

from __future__ import annotations

import time

#: seconds between two streamed updates of the same stream
TOKEN_INTERVAL = 0.05


class Throttle:
    """`ready(key)` is True at most once per `interval` seconds for each key (a stream's name)."""

    def __init__(self, interval: float = TOKEN_INTERVAL, clock=time.monotonic):
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def ready(self, key: str) -> bool:
        now = self._clock()
        if now - self._last.get(key, float("-inf")) >= self.interval:
            self._last[key] = now
            return True
        return False
