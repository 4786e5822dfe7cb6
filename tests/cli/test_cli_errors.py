"""The command line as a process: exit codes, no traceback, help (the full matrix: test_bad_input_matrix)."""

import subprocess
import sys


def run(args):
    return subprocess.run([sys.executable, "-m", "swtui", *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_bad_input_in_a_real_process():
    proc = run(["ablate", "tiny:llama", "--scale", "1,5,17=nan"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("swtui: invalid input: scale factor must be finite")


def test_directory_without_config(tmp_path):
    proc = run(["scan", str(tmp_path)])
    assert proc.returncode == 2 and "config.json" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_subcommands():
    proc = run(["--help"])
    assert proc.returncode == 0 and "scan" in proc.stdout and "ablate" in proc.stdout


def test_every_headless_call_says_what_it_does_before_importing_torch():
    """A stage notice on stderr comes before torch is imported (its latency is measured by make bench)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "swtui", "scan", "/no/such/model"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    lines = proc.stderr.splitlines()
    notice = next(i for i, ln in enumerate(lines) if ln.startswith("… swtui scan: starting"))
    # -X importtime logs each import on stderr as it happens
    torch_at = next(i for i, ln in enumerate(lines) if ln.endswith("| torch"))
    assert notice < torch_at
    assert proc.returncode == 2 and lines[-1].startswith("swtui: could not load the model")


def test_threads_sets_torchs_threads_whatever_the_environment_says():
    """--threads wins over OMP_NUM_THREADS, and the plan's cost records the threads its seconds took."""
    import json
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "swtui", "scan", "tiny:llama", "--threads", "2", "--json"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["plan"]["cost"]["torch_threads"] == 2
