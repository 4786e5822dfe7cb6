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
