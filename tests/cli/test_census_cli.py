"""`swtui census` as a process: killed after its first model, it resumes where it stopped; bad input
is one line and exit 2; --out writes census.json, census.md and one snapshot per model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.builders import write_tiny

ROOT = Path(__file__).resolve().parents[2]


def census(args, cache: Path, **kw):
    env = dict(os.environ, SWTUI_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "swtui", "census", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, **kw)


def test_killed_census_resumes_where_it_stopped(tmp_path):
    models, cache, out = tmp_path / "models", tmp_path / "cache", tmp_path / "out"
    models.mkdir()
    write_tiny(models, "a")
    write_tiny(models, "b")
    args = [str(models), "--eval-tokens", "400", "--no-channels", "--json", "--out", str(out)]
    first = census(args, cache)
    deadline = time.monotonic() + 300
    # census.json is rewritten after each model's row is cached: once it exists, the first model is done
    while not (out / "census.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # as hard as a kill gets: no clean-up runs
    first.communicate()
    (entry,) = (cache / "census").glob("*.json")  # the first model's row, the second not finished
    assert json.loads(entry.read_text())["row"]["name"] == "tiny-a"
    stamp = entry.stat().st_mtime_ns
    # what it did is already in --out: census.json with one row, and its snapshot
    partial = json.loads((out / "census.json").read_text())
    assert [r["name"] for r in partial["rows"]] == ["tiny-a"]

    second = census(args, cache)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    rows = json.loads(stdout)["rows"]
    assert [(r["name"], r["cached"]) for r in rows] == [("tiny-a", True), ("tiny-b", False)]
    assert entry.stat().st_mtime_ns == stamp  # not recomputed
    assert rows[0]["super_weights"][0]["verdict"] == "super weight"
    report = json.loads((out / "census.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["tiny-a", "tiny-b"]
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert len(snapshots) == 2  # the resumed model's snapshot is reused, not written twice
    assert all((out / r["snapshot"] / "findings.json").is_file() for r in report["rows"])
    md = (out / "census.md").read_text()
    assert "| tiny-a" in md and "(cached)" in md and "×" in md


@pytest.mark.parametrize("args, message", [
    ([], "census needs at least one PATH, or --hf-cache"),
    (["/no/such/folder"], "no such file or directory: /no/such/folder"),
    (["{empty}"], "no GGUF file or Hugging Face model folder found under"),
])
def test_bad_census_input_is_one_line(tmp_path, args, message, capsys):
    from swtui.cli import main

    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    assert main(["census", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("swtui: invalid input: ") and message in err
