"""Faults in the inference thread: exceptions, out-of-memory, cancel, quit, signals; no hook left."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from swtui.core.engine import protocol as ev
from swtui.core.edits.hooks import count_hooks
from swtui.core.engine.engine import Engine

from support.engine import Collector, idle_worker
from support.builders import tiny_session


def test_out_of_memory_during_generation_is_reported_and_state_kept():
    s = tiny_session("llama")
    s.ledger.prune(1, 5, 17)
    h = s.current_hash()
    w, out = idle_worker(s)
    real = s.model.forward
    calls = {"n": 0}

    def oom(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:  # after the probe, inside generation
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*a, **k)

    s.model.forward = oom
    try:
        w.submit(ev.Refresh())
        failed = out.wait_for(lambda e: isinstance(e, ev.Failed))
        assert failed.title == "Out of memory"
    finally:
        s.model.forward = real
    assert s.current_hash() == h and s.ledger.verify() == []
    assert count_hooks(s.model) == 0
    w.submit(ev.Refresh())  # still usable afterwards
    out.wait_for(lambda e: isinstance(e, ev.GenerationDone) and not e.cancelled)
    assert w.stop(timeout=5)


def test_exception_in_a_hook_leaves_no_hook_behind():
    import swtui.core.quant.session as qs

    s = tiny_session("llama")
    s.ledger.prune(1, 5, 17)
    qs.apply_quant_config(s, {"method": "rtn", "bits": 8, "group": "channel", "act_bits": 8})
    w, out = idle_worker(s)
    out.events.clear()

    def explode(*a, **k):
        return 1 / 0

    real = qs.fake_quant_activation
    qs.fake_quant_activation = explode  # raises inside the act-quant hook of the current variant
    try:
        w.submit(ev.Refresh())
        failed = out.wait_for(lambda e: isinstance(e, ev.Failed))
    finally:
        qs.fake_quant_activation = real
    assert "ZeroDivisionError" in failed.message
    assert count_hooks(s.model) == 0
    assert w.stop(timeout=5)


def streaming_worker():
    """A worker on a tiny model, in the middle of streaming a 200-token generation."""
    s = tiny_session("llama")
    w, out = idle_worker(s, tokens=200)
    out.events.clear()
    w.submit(ev.Refresh())
    out.wait_for(lambda e: isinstance(e, ev.TokenStreamed))
    return s, w, out


def test_cancel_mid_generation_and_stop():
    s, w, out = streaming_worker()
    w.cancel()
    done = out.wait_for(lambda e: isinstance(e, ev.GenerationDone) and e.cancelled)
    assert done.cancelled and count_hooks(s.model) == 0
    assert w.stop(timeout=2)


def test_new_request_supersedes_running_generation():
    s, w, out = streaming_worker()
    w.submit(ev.Prune((1, 5, 17)))  # the running generation is stale now
    out.wait_for(lambda e: isinstance(e, ev.GenerationDone) and e.cancelled)
    out.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.edit_count == 1)
    w.cancel()
    assert w.stop(timeout=5)
    assert s.ledger.edit((1, 5, 17)).op == "prune"


def test_quit_during_model_load(monkeypatch):
    """Stopping while the model loads: stop() returns, the (daemon) thread never blocks exit."""
    import swtui.core.model.loading as loading

    gate = threading.Event()

    def slow_load(*a, **k):
        gate.wait(5)
        raise loading.ModelLoadError("load aborted")

    monkeypatch.setattr(loading, "load_model", slow_load)
    out = Collector()
    w = Engine(out, "whatever")
    w.start()
    assert w.stop(timeout=0.2) is False  # still loading: stop does not hang
    assert w.daemon
    gate.set()
    w.join(5)
    assert not w.alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_end_the_app(sig, tmp_path):
    trace = tmp_path / "trace"
    env = dict(os.environ, SWTUI_HEADLESS="1", SWTUI_TRACE=str(trace))
    proc = subprocess.Popen([sys.executable, "-m", "swtui", "tiny:llama"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60  # wait until the app has drawn its first chart, not a fixed time
    while not (trace.exists() and "ProbeDone" in trace.read_text()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the app did not exit after the signal")
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr.read()


def test_cancel_drops_queued_refreshes_but_keeps_edits():
    s = tiny_session("llama")
    w, out = idle_worker(s)
    gate = threading.Event()
    w.submit(ev.Call(lambda session: gate.wait(10)))  # the thread is busy: what follows queues up
    w.submit(ev.Refresh())
    w.submit(ev.Prune((1, 5, 17)))
    w.submit(ev.Detect())
    out.events.clear()
    w.cancel()
    gate.set()
    out.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.edit_count == 1)
    assert w.wait_idle(30)
    assert s.ledger.edit((1, 5, 17)).op == "prune"
    assert not any(isinstance(e, ev.DetectionDone) for e in out.events)  # the queued detection was dropped
    assert w.stop(timeout=10)


def test_an_edit_waits_for_a_running_quantization_instead_of_cancelling_it(monkeypatch):
    import swtui.core.quant.session as qs

    s = tiny_session("llama")
    w, out = idle_worker(s)
    real = qs.rtn
    started = threading.Event()

    def slow(*a, **k):
        started.set()
        time.sleep(0.05)
        return real(*a, **k)

    monkeypatch.setattr(qs, "rtn", slow)
    out.events.clear()
    w.submit(ev.Quantize({"method": "rtn", "bits": 4, "group": "tensor"}))
    assert started.wait(10)
    w.submit(ev.Prune((1, 5, 17)))  # pressed while the quantization runs
    out.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.edit_count == 2)  # quantization + prune
    assert s.quant_config is not None and s.ledger.edit((1, 5, 17)).op == "prune"
    assert not any(isinstance(e, ev.Notice) and "cancelled" in e.message for e in out.events)
    w.cancel()
    assert w.stop(timeout=5)


def test_a_refresh_reuses_the_probe_of_an_unchanged_state(monkeypatch):
    """No work done twice: right after detection (or a regenerate) the chart needs no new forward."""
    import swtui.core.detection.detect as detect

    calls = []
    real = detect.run_probe
    monkeypatch.setattr(detect, "run_probe", lambda *a, **k: calls.append(1) or real(*a, **k))
    s = tiny_session("llama")
    w, out = idle_worker(s)
    assert len(calls) == 1  # the load-time refresh
    w.submit(ev.Refresh())
    assert w.wait_idle(30)
    assert len(calls) == 1  # same state, same prompt: the probe is reused
    w.submit(ev.Prune((1, 5, 17)))
    assert w.wait_idle(30)
    assert len(calls) == 2  # the state changed: probed again
    probe = [e for e in out.events if isinstance(e, ev.ProbeDone)][-1]
    assert probe.layers[1].out_max < 1000  # and it shows the pruned model
    assert w.stop(timeout=5)
