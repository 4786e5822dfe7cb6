"""Driving an app with Textual's Pilot: wait for the engine to settle, for a condition, for the
load."""

import asyncio
import time


async def settle(pilot, app, timeout: float = 120.0) -> None:
    """Wait until the inference thread is idle with nothing queued, and the UI caught up."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        w = app.engine
        if w.idle:
            quiet += 1
            if quiet >= 4:
                await pilot.pause(0.05)
                return
        else:
            quiet = 0
    raise AssertionError(f"the inference thread did not settle in {timeout}s (busy with {app.main.busy!r})")


async def wait_for(pilot, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached in time")


def run(coro):
    return asyncio.get_event_loop().run_until_complete(coro)


async def started(pilot, app) -> None:
    """The (recorded or real) load drawn, and the app idle."""
    await wait_for(pilot, lambda: app.main.is_mounted and app.main.loaded and not app.main.busy, timeout=20)
    await pilot.pause()
