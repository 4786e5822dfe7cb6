"""`make bench`: swtui's performance figures on the demo model, side by side in one run.

Every measurement runs in a fresh process (bench/measure.py, bench/ui_latency.py). Prints a table
and writes bench/results/latest.json. Not part of `make test`: this machine is shared and noisy,
so only ratios measured in the same run are meaningful.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


BENCH_ENV: dict = {}  # SWTUI_BENCH_DEVICE, set from --device


def run(script: str, *args: str, env: dict | None = None) -> dict:
    env = dict(env or os.environ, **BENCH_ENV, SWTUI_T0=repr(time.time()))
    out = subprocess.run([PY, str(HERE / script), *args], capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def notice_latency(tries: int = 5) -> float:
    """Seconds from spawning a headless CLI call to its first stderr line (the stage notice)."""
    times = []
    for _ in range(tries):
        t = time.perf_counter()
        proc = subprocess.Popen([PY, "-m", "swtui", "scan", "/no/such/model"], stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        proc.stderr.readline()
        times.append(time.perf_counter() - t)
        proc.kill()
        proc.wait()
    return statistics.median(times)


def startup_table(startup: dict):
    from rich.table import Table

    t = Table(title=f"start-up profile: demo model on {startup['device']} ({startup['dtype']}), "
                    f"process start → detection and metrics done in {startup['total_s']:.1f} s", title_justify="left")
    t.add_column("stage")
    t.add_column("seconds", justify="right")
    for st in startup["stages"]:
        t.add_row(st["stage"], f"{st['s']:.2f}")
    return t


def main() -> int:
    import argparse

    import torch
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description="swtui's performance figures on the demo model")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto, as the app)")
    parser.add_argument("--big", action="store_true", help="models larger than the machine (bench/big.py) instead")
    parser.add_argument("--shapes", default="1b,13b", help="with --big: the shapes (1b: three ways; 13b: streamed)")
    args = parser.parse_args()
    BENCH_ENV["SWTUI_BENCH_DEVICE"] = args.device
    if args.big:
        return big_bench(args.shapes.split(","))
    console = Console()
    results: dict = {"machine": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "torch": torch.__version__, "python": platform.python_version(),
                                 "cuda": torch.cuda.is_available(),
                                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                                 "bench_device": BENCH_ENV["SWTUI_BENCH_DEVICE"]},
                     "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    console.print("[dim]measuring the start-up profile and the CLI's first notice…[/dim]")
    results["startup"] = run("measure.py", "startup")
    results["notice_s"] = notice_latency()
    steps = [("probe", "probe overhead"), ("ab", "A/B generation"), ("quant", "quantization pass"),
             ("detect", "detection cost")]
    for key, label in steps:
        console.print(f"[dim]measuring {label}…[/dim]")
        results[key] = run("measure.py", key)

    console.print("[dim]measuring open times (cold cache, then warm ×3)…[/dim]")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SWTUI_CACHE_DIR=cache)
        cold = run("measure.py", "open", env=env)
        warm = [run("measure.py", "open", env=env) for _ in range(3)]
    results["open"] = {"cold_load_s": cold["load_s"], "warm_load_s": statistics.median(w["load_s"] for w in warm),
                       "warm_load_again_s": statistics.median(w["load_again_s"] for w in warm),
                       "import_s": statistics.median(w["import_s"] for w in warm)}
    console.print("[dim]driving the real app in a terminal: first chart, detection, first token, q (3 + 17 runs)…[/dim]")
    results["tui"] = run("tui_path.py")

    console.print("[dim]measuring memory (three processes)…[/dim]")
    results["memory"] = {m: run("measure.py", f"memory-{m}") for m in ("idle", "quant", "ab", "compare")}
    console.print("[dim]measuring UI latency while detection runs, then while a generation streams…[/dim]")
    results["ui_detecting"] = run("ui_latency.py", "detecting")
    results["ui"] = run("ui_latency.py", "generating")

    p, ab, q, o, mem, ui = (results[k] for k in ("probe", "ab", "quant", "open", "memory", "ui"))
    t = Table(title=f"swtui bench — {results['machine']['cores']} cores, torch {results['machine']['torch']} "
                    f"({results['machine']['torch_threads']} threads)", title_justify="left")
    for col in ("measure", "value", "target", "met"):
        t.add_column(col, justify="right" if col != "measure" else "left")

    def row(name, value, target, ok):
        t.add_row(name, value, target, "[green]yes[/green]" if ok else "[red]no[/red]")

    row(f"probe / plain forward ({p['tokens']} tok)", f"{p['ratio']:.3f}× ({p['probe_s']*1e3:.1f} vs {p['plain_s']*1e3:.1f} ms)",
        "≤ 1.05×", p["ratio"] <= 1.05)
    row(f"A/B batched / one ({ab['new_tokens']} tok)", f"{ab['ratio']:.2f}× ({ab['ab_batched_s']:.2f} vs {ab['one_s']:.2f} s)",
        "≤ 1.5×", ab["ratio"] <= 1.5)
    row("A/B two passes / one (quantized)", f"{ab['two_pass_ratio']:.2f}×", "(fallback)", True)
    row("warm model load, modules imported", f"{o['warm_load_again_s']:.2f} s", "≤ 0.5 s", o["warm_load_again_s"] <= 0.5)
    row("warm load in a fresh process", f"{o['warm_load_s']:.2f} s (cold GGUF {o['cold_load_s']:.1f} s)",
        "(report)", True)
    tui = results["tui"]
    row("start → first chart (TUI, detection on)", f"{tui['first_chart_s']:.1f} s (model loaded at {tui['loaded_s']:.1f} s)",
        "≤ load + 1.5 s", tui["first_chart_s"] <= tui["loaded_s"] + 1.5)
    provisional_after = tui["first_provisional_s"] - tui["first_chart_s"]
    verdict_after = tui["first_verdict_s"] - tui["first_chart_s"]
    row("first chart → first provisional verdict (treatment's interval)", f"{provisional_after:.1f} s", "≤ 3 s",
        provisional_after <= 3)
    row("first chart → first verdict (interval + 5 controls)", f"{verdict_after:.1f} s", "≤ 10 s", verdict_after <= 10)
    row("start → detection results complete (last verdict)", f"{tui['detection_done_s']:.1f} s", "≤ 20 s",
        tui["detection_done_s"] <= 20)
    det = results["detect"]
    app, full = det["app"], det["full_budget_no_prefix"]
    row(f"detection: {app['rounds']} probe rounds + 4 prompts", f"{app['probe_rounds_s']:.1f} s", "(report)", True)
    ac, fc = app["cost"], full["cost"]
    row(f"scan: evidence ({app['claims']} claims, {app['candidates']} candidates), the plan",
        f"{app['impact_s']:.1f} s, {ac['forwards']} forwards, {ac['tokens_total']} tokens", "≤ 15 s", app["impact_s"] <= 15)
    row("scan: the same, every arm on the whole budget, no prefix",
        f"{full['impact_s']:.1f} s, {fc['forwards']} forwards, {fc['tokens_total']} tokens "
        f"({fc['tokens_total'] / max(1, ac['tokens_total']):.1f}× the plan's)", "(report)", True)
    row("scan: tokens per look (the plan)", " ".join(f"{k}:{v}" for k, v in ac["tokens_per_look"].items()),
        "(report; -1 is the baseline)", True)
    row("start → first generated token shown", f"{tui['first_token_s']:.1f} s", "(report)", True)
    row(f"q → process exit ({tui['quit_tries']} tries, mid-forward)",
        f"p50 {tui['quit_p50_s'] * 1e3:.0f} ms, p95 {tui['quit_p95_s'] * 1e3:.0f} ms", "p95 ≤ 300 ms",
        tui["quit_p95_s"] <= 0.3)
    uid = results["ui_detecting"]
    row("key → screen while detecting", f"p50 {uid['p50_ms']:.1f} ms, p95 {uid['p95_ms']:.1f} ms", "p95 ≤ 50 ms",
        uid["p95_ms"] <= 50)
    row("key → screen while streaming", f"p50 {ui['p50_ms']:.1f} ms, p95 {ui['p95_ms']:.1f} ms", "p95 ≤ 50 ms",
        ui["p95_ms"] <= 50)
    row("RTN W4 all linears / plain copy", f"{q['ratio']:.2f}× ({q['rtn_s']:.2f} vs {q['copy_s']:.2f} s)", "≤ 3×",
        q["ratio"] <= 3)
    wmb = mem["idle"]["weights_mb"]
    row("peak RSS idle (− runtime) / weights", f"{mem['idle']['multiple']:.2f}× of {wmb:.0f} MB", "≤ 1.3×",
        mem["idle"]["multiple"] <= 1.3)
    row("peak RSS quantized preview / weights", f"{mem['quant']['multiple']:.2f}×", "≤ 2.1×", mem["quant"]["multiple"] <= 2.1)
    row("peak RSS A/B generation / weights", f"{mem['ab']['multiple']:.2f}×", "≤ 2.1×", mem["ab"]["multiple"] <= 2.1)
    row("peak RSS comparison, baseline + 3 variants / weights", f"{mem['compare']['multiple']:.2f}×",
        "≤ 2.1× (model + one quantized copy)", mem["compare"]["multiple"] <= 2.1)
    if "device_multiple" in mem["idle"]:
        for m in ("idle", "quant", "ab", "compare"):
            row(f"peak GPU memory {m} / weights", f"{mem[m]['device_multiple']:.2f}× ({mem[m]['device_peak_mb']:.0f} MB)",
                "(report)", True)
    row("CLI call → first stderr notice", f"{results['notice_s'] * 1e3:.0f} ms", "≤ 100 ms", results["notice_s"] <= 0.1)
    console.print(t)
    console.print(startup_table(results["startup"]))
    out = HERE / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    console.print(f"results: {out.relative_to(HERE.parent)}")
    return 0


def big_bench(shapes: list[str]) -> int:
    """`make bench ARGS=--big`: the planted Llama shapes streamed, in memory and offloaded."""
    from rich.console import Console
    from rich.table import Table

    from big import run_all

    results = run_all(shapes, run)
    t = Table(title="models larger than the machine (bench/big.py)", title_justify="left")
    for col in ("shape", "mode", "weights", "time", "peak RSS", "read", "planted weight"):
        t.add_column(col, justify="left" if col in ("shape", "mode", "planted weight") else "right")
    for name, modes in results.items():
        for mode, r in modes.items():
            read = r.get("stream", {}).get("bytes_read", r["read_syscall_bytes"])
            t.add_row(name, mode, f"{r['weights_bytes'] / 1e9:.1f} GB", f"{r['total_s']:.0f} s",
                      f"{r['peak_rss_bytes'] / 1e9:.2f} GB", f"{read / 1e9:.1f} GB",
                      f"{r['planted_verdict']} {r['planted_ratio']}")
    Console().print(t)
    out = HERE / "results" / "big.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    Console().print(f"results: {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
