"""Bad input on the command line: one clear line on stderr, exit code 2, no traceback."""

import subprocess
import sys

import pytest

CASES = [
    (["scan", "/no/such/model"], "no such file"),
    (["scan", "tiny:martian"], "unknown tiny architecture"),
    (["ablate", "tiny:llama", "--prune", "11,507"], "LAYER,ROW,COL"),
    (["ablate", "tiny:llama", "--prune", "a,b,c"], "LAYER,ROW,COL"),
    (["ablate", "tiny:llama", "--prune=-1,2,3"], "negative"),
    (["ablate", "tiny:llama", "--prune", "9,0,0"], "out of range"),
    (["ablate", "tiny:llama", "--scale", "1,5,17=nan"], "finite"),
    (["ablate", "tiny:llama", "--scale", "1,5,17=inf"], "finite"),
    (["ablate", "tiny:llama", "--scale", "1,5,17=big"], "number"),
    (["ablate", "tiny:llama"], "nothing to ablate"),
    (["scan", "tiny:llama", "--device", "tpu"], "--device"),
    (["scan", "tiny:llama", "--dtype", "float8"], "--dtype"),
    (["scan", "tiny:llama", "--max-rounds", "x"], "--max-rounds"),
]


def run(args):
    return subprocess.run([sys.executable, "-m", "swtui", *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_exit_2(args, needle, capsys):
    from swtui.cli import main

    try:
        code = main(args)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("swtui:")]
    assert len(lines) == 1 and needle in lines[0], err


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
