"""Key-to-screen latency while a generation streams, driven with Textual's Pilot on the demo model.

Each sample is the time `pilot.press(key)` takes: the key is delivered, handled, and the screen
has processed the resulting refresh. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/tests")


async def main(samples: int = 40) -> dict:
    from swtui.core import events as ev
    from swtui.core.loading import load_model
    from swtui.core.session import Session
    from swtui.tui.app import SwtuiApp
    from tui_helpers import settle, wait_for

    session = Session(load_model(None))
    app = SwtuiApp(session=session, max_new_tokens=400, detect_on_load=False)
    lat = []
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, timeout=600)
        app.events_seen.clear()
        await pilot.press("g")
        await wait_for(pilot, lambda: any(isinstance(e, ev.TokenStreamed) for e in app.events_seen), 120)
        for i in range(samples):
            t = time.perf_counter()
            await pilot.press("l" if i % 2 == 0 else "h")
            lat.append(time.perf_counter() - t)
            await pilot.pause(0.02)
        streaming = not any(isinstance(e, ev.GenerationDone) for e in app.events_seen)
        tokens = sum(isinstance(e, ev.TokenStreamed) for e in app.events_seen)
        app.worker.cancel()
        await settle(pilot, app, timeout=120)
    lat.sort()
    return {"samples": len(lat), "p50_ms": 1000 * statistics.median(lat),
            "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))], "max_ms": 1000 * lat[-1],
            "still_streaming_at_end": streaming, "token_events_during": tokens}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
