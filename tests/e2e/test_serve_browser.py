"""`swtui serve` in a real browser: headless Chromium (the OS package, driven by Playwright) loads
the page, the inspector draws its spike chart, a mouse click and the keys `d` and `p` reach it
through xterm.js, and Ctrl+C (SIGINT to the server alone) leaves no process the server started.

Without Chromium or Playwright the test skips, saying so, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from support.browser import CATCH_TERMINAL, CHROMIUM_ARGS, READ_SCREEN, chromium, free_port

#: the planted tiny Llama: a spike at layer 1, its candidate W[5, 17] listed in the table
MODEL = "tiny:llama"
CANDIDATE = "1      5    17"


def _missing(what: str) -> None:
    message = f"{what}: the browser test of `swtui serve` cannot run (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _wait_listening(port: int, server: subprocess.Popen, log, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"swtui serve exited with {server.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"swtui serve did not listen on port {port} within {timeout} s")


def _wait_screen(page, until, what: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = None
    while time.monotonic() < deadline:
        screen = page.evaluate(READ_SCREEN)
        if screen is not None and until(screen):
            return screen
        time.sleep(0.2)
    pytest.fail(f"the browser never showed {what} within {timeout} s; its screen:\n{screen}")


def _click_cell(page, row: int, col: int) -> None:
    """A real mouse click on a terminal cell (the page's pixels, through xterm.js's mouse reporting)."""
    at = page.evaluate("""([row, col]) => {
      const term = window.__textualTerminal.terminal;
      const box = term.element.querySelector(".xterm-screen").getBoundingClientRect();
      return {x: box.left + (col + 0.5) * box.width / term.cols, y: box.top + (row + 0.5) * box.height / term.rows};
    }""", [row, col])
    page.mouse.click(at["x"], at["y"])


def _line(screen: str, text: str) -> str:
    return next((line for line in screen.splitlines() if text in line), "")


def _marked(marker: str) -> list:
    """Live processes whose environment carries `marker` (the server and what it started)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SWTUI_SERVE_TEST") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def test_serve_drives_the_inspector_in_chromium_and_ctrl_c_ends_every_process(tmp_path):
    browser_path = chromium()
    if browser_path is None:
        _missing("no Chromium found (chromium, chromium-browser, google-chrome or $SWTUI_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[test]')")

    port, marker = free_port(), uuid.uuid4().hex
    # the browser uses another name for the server than the address it binds, as through an SSH tunnel
    origin = f"http://localhost:{port}"
    log = tmp_path / "server.log"  # a file, not a pipe: the server must never block on its output
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "swtui", "serve", MODEL, "--port", str(port)],
                                  env={**os.environ, "SWTUI_SERVE_TEST": marker}, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(port, server, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.add_init_script(CATCH_TERMINAL)
            page.goto(origin + "/")
            # the chart: the first probe's bars, the spike layer named in the chart's title
            _wait_screen(page, lambda s: "layer 1: in" in s and "████" in s, "the spike chart")
            screen = _wait_screen(page, lambda s: "below thr" in _line(s, CANDIDATE) and "idle" in _line(s, " swtui "),
                                  "the first detection's verdict and the app idle")
            # the mouse: a click on layer 3's column of the chart selects it (its figures in the title)
            lines = screen.splitlines()
            axis = next(y for y, line in enumerate(lines) if "└0" in line)
            _click_cell(page, axis - 1, lines[axis].index(" 3 ") + 1)
            _wait_screen(page, lambda s: "layer 3: in" in s, "layer 3 selected by the click")
            page.evaluate("() => window.__textualTerminal.terminal.focus()")
            page.keyboard.press("d")  # detect again: the status bar leaves `idle`
            _wait_screen(page, lambda s: "idle" not in _line(s, " swtui "), "a second detection after `d`")
            page.keyboard.press("p")  # prune the selected candidate (once the detection is done)
            screen = _wait_screen(page, lambda s: "pruned" in _line(s, CANDIDATE) and "1 edit " in s
                                  and "idle" in _line(s, " swtui "), "the candidate pruned and the app idle")
            assert "████" in screen and "└0" in screen  # the chart is still drawn beside the pruned state
            page.screenshot(path=tmp_path / "serve.png")
            assert (tmp_path / "serve.png").stat().st_size > 20_000
            assert all(url.startswith(origin) for url in requested), f"the page fetched from elsewhere: {requested}"

            first_app = [p for p in _marked(marker) if p.pid != server.pid]
            assert len(first_app) == 1 and "swtui" in " ".join(first_app[0].cmdline()), first_app
            # a second tab, its own session: once its app is up (its signal handlers installed, so
            # SIGTERM alone no longer kills it while stopped), it stops answering, as an app stuck in
            # a forward pass would; the server must end it all the same
            second = browser.new_page(viewport={"width": 1280, "height": 800})
            second.add_init_script(CATCH_TERMINAL)
            second.goto(origin + "/")
            _wait_screen(second, lambda s: " swtui " in s, "the second tab's first frame")
            apps = [p for p in _marked(marker) if p.pid != server.pid]
            assert len(apps) == 2, apps
            next(p for p in apps if p.pid != first_app[0].pid).suspend()
            # Ctrl+C, to the server alone (a terminal would signal the apps too), both tabs still open
            t0 = time.monotonic()
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=20) == 0
            stopped_in = time.monotonic() - t0
            browser.close()
        assert _marked(marker) == [], "processes the server started outlived it"
        assert stopped_in < 10, f"the server took {stopped_in:.1f} s to stop"
        said = log.read_text()
        assert f"swtui serve: the inspector on {MODEL} at http://127.0.0.1:{port}/" in said
        assert "Traceback" not in said and "no authentication" not in said and "Unknown child" not in said, said
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for proc in _marked(marker):
            proc.kill()
