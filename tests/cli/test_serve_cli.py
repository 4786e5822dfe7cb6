"""`swtui serve` without a browser: what each app process is started with, who is warned about what,
bad input. The browser itself: tests/e2e/test_serve_browser.py."""

import shlex
import socket
import subprocess
import sys

import pytest

from swtui.cli import main, serve
from swtui.cli.parser import build_parser


@pytest.fixture
def served(monkeypatch):
    """Runs `swtui serve …` up to the server, which records what it was given instead of serving."""
    seen = {}

    class Recorder:
        def __init__(self, command, host, port, title, model):
            seen.update(command=command, host=host, port=port, title=title)

        def serve(self):
            seen["served"] = True

    monkeypatch.setattr(serve, "_server_class", lambda: Recorder)
    return seen


def test_each_tab_runs_the_inspector_with_the_model_and_options_given(served, capsys, tmp_path):
    text = tmp_path / "eval.txt"
    text.write_text("some text to measure perplexity on. " * 20)
    assert main(["serve", "tiny:gpt2", "--theme", "swtui-light", "--max-new-tokens", "8", "--trust-remote-code",
                 "--eval-file", str(text), "--port", "8123"]) == 0
    assert served["served"] and served["host"] == "127.0.0.1" and served["port"] == 8123
    word, *argv = shlex.split(served["command"])
    assert word == "exec"  # the app replaces textual-serve's shell: one process per tab
    assert argv[:4] == [sys.executable, "-m", "swtui", "tiny:gpt2"]
    options = argv[4:]
    for expected in (["--theme", "swtui-light"], ["--max-new-tokens", "8"], ["--eval-file", str(text)]):
        at = options.index(expected[0])
        assert options[at:at + 2] == expected
    assert "--trust-remote-code" in options and "--host" not in options and "--port" not in options
    # the child parses what it is given back into the same options
    child = build_parser(None).parse_args(argv[3:])
    assert (child.model, child.theme, child.max_new_tokens, child.trust_remote_code) == ("tiny:gpt2", "swtui-light", 8, True)
    assert capsys.readouterr().err == ""  # localhost: no warning


def test_no_model_serves_the_demo_with_default_options(served):
    assert main(["serve"]) == 0
    assert shlex.split(served["command"]) == ["exec", sys.executable, "-m", "swtui"]
    assert served["title"] == "swtui — the demo model"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_are_not_warned_about(host):
    assert serve.exposure_warning(host, 8000) is None


@pytest.mark.parametrize("host, who", [("0.0.0.0", "any of its addresses"), ("::", "any of its addresses"),
                                       ("10.1.2.3", "10.1.2.3 port 9000"), ("gpu-box", "gpu-box port 9000")])
def test_another_host_is_served_with_a_warning_saying_who_can_reach_it(served, capsys, host, who):
    assert main(["serve", "tiny:llama", "--host", host, "--port", "9000"]) == 0
    err = capsys.readouterr().err
    assert served["host"] == host and "warning: no authentication" in err and who in err
    assert "ssh -L 9000:localhost:9000" in err


@pytest.mark.parametrize("args, message", [(["--port", "70000"], "--port must be 1–65535"),
                                           (["--eval-file", "/no/such/file.txt"], "/no/such/file.txt")])
def test_bad_input_is_one_line_and_exit_2_before_serving(served, capsys, args, message):
    assert main(["serve", "tiny:llama", *args]) == 2
    assert "served" not in served and message in capsys.readouterr().err


def test_a_taken_port_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "swtui", "serve", "tiny:llama", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"swtui: invalid input: cannot listen on 127.0.0.1:{port}")
