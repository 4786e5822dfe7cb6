"""Record the real engine on the demo model, for the torch-free TUI tests to replay.

    .venv/bin/python tests/record_demo_events.py   # writes tests/tui/recordings/demo.json

The engine loads SmolLM2-135M-Instruct (CPU, float32), detects, and then serves one request after
another; for each it records the request and every event the engine emitted until it was idle
again, all as plain data (`protocol.to_data`). `tests/support/fake_engine.py` replays them. Re-record
when the protocol or the engine's event sequences change (the fake refuses a recording whose
messages no longer parse), then update the snapshots drawn from it:
`.venv/bin/python -m pytest tests/tui --snapshot-update` (and read the diff: the figures come
from this machine's CPU arithmetic, so a re-recording elsewhere may move the last digits).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "tui" / "recordings" / "demo.json"
SW = (11, 507, 1229)
# QuantDialog's second preset on the demo: one bit below its Q4_1 source (presets.presets, SourceQuant.default_bits)
QUANT = dict(method="rtn", bits=3, group="block", block=4096)


def main() -> int:
    from support.builders import CPU  # tests/ is this script's own folder, first on sys.path

    from swtui.core.engine import protocol as ev
    from swtui.core.engine import wire
    from swtui.core.defaults import GEN_PROMPT
    from swtui.core.engine.engine import Engine
    from swtui.core.quant.config import QuantConfig

    lock = threading.Lock()
    events: list = []

    def emit(event) -> None:
        with lock:
            events.append(event)

    engine = Engine(emit, None, CPU, max_new_tokens=24, token_interval=0.05)
    started = time.monotonic()
    engine.start()
    if not engine.wait_idle(timeout=900, settle=0.5):
        raise SystemExit("the engine did not settle after loading")
    steps = [{"request": None, "events": [wire.to_data(e) for e in events]}]
    print(f"load + detection: {len(events)} events, {time.monotonic() - started:.1f}s", file=sys.stderr)
    layer2 = engine.last_probe.layers[2]
    requests = [
        ev.Prune(SW, on=True), ev.Prune(SW, on=False),
        ev.Scale(SW, 2.0), ev.Restore(SW),
        ev.ToggleSA(SW), ev.Prune(SW, on=True), ev.RestoreAll(),
        ev.NameSpike(2, layer2.out_channel, layer2.in_channel, "mine"),
        ev.ToggleWriteAblation(11, 507), ev.ToggleWriteAblation(11, 507),
        ev.Refresh(),
        ev.SetPrompt("The capital of Italy is"), ev.SetPrompt("The capital of France is"),
        ev.Quantize(QuantConfig(**QUANT)), ev.RestoreAll(),
        ev.NameSpike(99, 0, 0, "out of range"),  # a real failure: the model has 30 layers
        ev.Prune(SW, on=True),  # the pruned state the snapshot shows (different generations)
        ev.Export("snapshots"),
        ev.RestoreAll(),
        ev.Detect(),
    ]
    for request in requests:
        with lock:
            events.clear()
        t0 = time.monotonic()
        engine.submit(request)
        if not engine.wait_idle(timeout=900, settle=0.5):
            raise SystemExit(f"the engine did not settle after {request}")
        with lock:
            recorded = [wire.to_data(e) for e in events]
        data = wire.to_data(request)
        if isinstance(request, ev.Export):
            data["svg"] = None  # the UI's screenshot: not part of the request's identity
        steps.append({"request": data, "events": recorded})
        print(f"{type(request).__name__}: {len(recorded)} events, {time.monotonic() - t0:.1f}s", file=sys.stderr)
    engine.stop()
    session = engine.session
    write(OUT, steps)

    # `swtui open` of a snapshot taken from other weights: the engine asks before it opens it
    from swtui.core.snapshot.snapshot import build_snapshot

    snapshot = build_snapshot(session, prompt=GEN_PROMPT)
    snapshot["model"]["weights_sha256"] = "0" * 64
    events.clear()
    other = Engine(emit, None, CPU, session=session, snapshot=snapshot, max_new_tokens=24)
    other.start()
    if not other.wait_idle(timeout=300, settle=0.5):
        raise SystemExit("the engine did not settle on the mismatching snapshot")
    other.stop()
    with lock:
        write(OUT.with_name("mismatch.json"), [{"request": None, "events": [wire.to_data(e) for e in events]}])
    return 0


def write(path: Path, steps: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": "SmolLM2-135M-Instruct (demo), CPU float32", "steps": steps},
                               separators=(",", ":")))
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
