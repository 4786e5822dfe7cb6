"""Key-to-screen latency while the inference thread works (streams a generation, then measures
stopwords and perplexity), on the demo model, in an app driven headless.

A sample: a Key event is posted to the app; we wait until the chart's selection has moved and
the screen has refreshed after it (`call_after_refresh`). Not `pilot.press`: that also waits for
every animation to finish, and the indeterminate progress bar animates for as long as the thread
is busy, which measured Pilot rather than swtui (a 2 s floor). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT + "/tests"]  # the tests' support package (support.pilot)


async def main(samples: int = 40, phase: str = "generating") -> dict:
    """phase "generating": keys while a 400-token generation streams; "detecting": while detection runs."""
    from swtui.core.engine import protocol as ev
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session
    from swtui.tui.app import SwtuiApp
    from textual import events

    from swtui.tui.widgets.chart import LayerSpikeChart
    from support.pilot import settle, wait_for

    session = Session(load_model(None, LoadOptions(device=os.environ.get("SWTUI_BENCH_DEVICE", "auto"))))
    app = SwtuiApp(session=session, max_new_tokens=400, detect_on_load=phase == "detecting")
    lat = []
    async with app.run_test(size=(120, 40)) as pilot:
        if phase == "detecting":  # measure from the first chart on, while remove-and-repeat and impact run
            await wait_for(pilot, lambda: any(isinstance(e, ev.ProbeDone) for e in app.events_seen), 600)
        else:
            await settle(pilot, app, timeout=600)
            app.events_seen.clear()
            await pilot.press("g")
            await wait_for(pilot, lambda: any(isinstance(e, ev.TokenStreamed) for e in app.events_seen), 120)
        chart = app.query_one(LayerSpikeChart)
        chart.focus()
        loop = asyncio.get_running_loop()
        during = {"stream": 0, "busy": 0}
        for i in range(samples):
            before = chart.selected
            key = "l" if before == 0 or (i % 2 == 0 and before < 29) else "h"
            streaming = not any(isinstance(e, (ev.GenerationDone, ev.DetectionDone)) for e in app.events_seen)
            busy = app.engine.busy
            t = time.perf_counter()
            app.post_message(events.Key(key, key))
            # the selection moves (detection finishing may also move it: any change counts)
            while chart.selected == before and time.perf_counter() - t < 10:
                await asyncio.sleep(0.0005)
            done = loop.create_future()
            app.call_after_refresh(lambda: done.done() or done.set_result(time.perf_counter()))
            lat.append(await done - t)
            during["stream"] += streaming
            during["busy"] += busy
            await asyncio.sleep(0.05)
        tokens = sum(isinstance(e, ev.TokenStreamed) for e in app.events_seen)
        app.engine.cancel()
        await settle(pilot, app, timeout=120)
    lat.sort()
    return {"samples": len(lat), "p50_ms": 1000 * statistics.median(lat),
            "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))], "max_ms": 1000 * lat[-1],
            "samples_while_streaming": during["stream"], "samples_while_busy": during["busy"],
            "token_events": tokens}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(phase=sys.argv[1] if len(sys.argv) > 1 else "generating"))))
