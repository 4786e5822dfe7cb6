"""The path a user takes: `swtui` on the demo model in a real pseudo-terminal, detection on.

Measures, from process start: the first chart drawn (first ProbeDone handled), detection done,
the first generated token shown; then `q` → process exit. And `q` → exit over N tries pressed
while the model works (mid-detection, mid-forward). The app reports when it handled each kind of
event through SWTUI_TRACE. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time


def _drain(fd, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:
                return


def _trace(path: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            t, name = line.split()
            out.setdefault(name, float(t))
    return out


def one_run(wait_for: str, device: str, timeout: float = 300) -> dict:
    """Start swtui, wait until event `wait_for` was handled, press q, time the exit."""
    trace = tempfile.mktemp(prefix="swtui-trace-")
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", SWTUI_TRACE=trace, COLUMNS="100", LINES="30")
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "swtui", "--device", device], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + timeout
        while wait_for not in _trace(trace) and time.monotonic() < deadline and proc.poll() is None:
            _drain(master, 0.05)
        marks = _trace(trace)
        t_q = time.monotonic()
        os.write(master, b"q")
        while proc.poll() is None and time.monotonic() - t_q < 10:
            _drain(master, 0.005)
        quit_s = time.monotonic() - t_q
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        if os.path.exists(trace):
            os.unlink(trace)
    return {"marks": {k: v - t0 for k, v in marks.items()}, "quit_s": quit_s, "code": proc.returncode}


def main(runs: int = 3, quit_tries: int = 20, device: str = "auto") -> dict:
    full = [one_run("StopwordsDone", device) for _ in range(runs)]

    def med(name: str) -> float | None:
        vals = [r["marks"][name] for r in full if name in r["marks"]]
        return statistics.median(vals) if vals else None

    quits = [r["quit_s"] for r in full]
    for _ in range(quit_tries - runs):  # q while detection runs (the model is mid-forward)
        quits.append(one_run("ProbeDone", device)["quit_s"])
    quits.sort()
    return {"runs": runs, "first_chart_s": med("ProbeDone"), "first_provisional_s": med("FirstProvisional"),
            "first_verdict_s": med("FirstVerdict"),
            "detection_done_s": med("DetectionDone"),
            "first_token_s": med("TokenStreamed"), "loaded_s": med("Loaded"),
            "quit_p50_s": statistics.median(quits), "quit_p95_s": quits[max(0, round(0.95 * len(quits)) - 1)],
            "quit_max_s": quits[-1], "quit_tries": len(quits)}


if __name__ == "__main__":
    print(json.dumps(main(device=os.environ.get("SWTUI_BENCH_DEVICE", "auto"))))
