"""Re-make snapshots/browser-demo.png: `swtui serve` on the demo model in headless Chromium, the
super weight pruned once detection has judged it (the picture in the README and docs/browser.md).

    python tests/capture_browser_demo.py [OUT.png]

Needs what the browser test needs (Chromium, Playwright) and the demo model; a few minutes on a CPU.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from support.browser import CATCH_TERMINAL, CHROMIUM_ARGS, READ_SCREEN, chromium, free_port

ROOT = Path(__file__).resolve().parents[1]


def wait(page, until, what: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = page.evaluate(READ_SCREEN)
        if screen and until(screen):
            return screen
        time.sleep(0.5)
    raise SystemExit(f"never saw {what}; the screen:\n{screen}")


def status(screen: str) -> str:
    return screen.splitlines()[0]


def super_weight_row(screen: str) -> str:
    return next((ln for ln in screen.splitlines() if " 507 " in ln and " 1229 " in ln), "")


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "swtui", "serve", "--port", str(port)], cwd=ROOT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(CATCH_TERMINAL)
            page.goto(f"http://localhost:{port}/")
            wait(page, lambda s: "super weight" in super_weight_row(s) and "idle" in status(s),
                 "detection's verdict on 11[507, 1229] and the app idle")
            page.evaluate("() => window.__textualTerminal.terminal.focus()")
            page.keyboard.press("p")
            wait(page, lambda s: "pruned" in super_weight_row(s) and "1 edit " in s and "idle" in status(s),
                 "the super weight pruned and the generations done")
            time.sleep(6)  # the detection's notices time out
            page.screenshot(path=out)
            print(page.evaluate(READ_SCREEN))
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            browser.close()
    finally:
        if server.poll() is None:
            server.kill()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "snapshots" / "browser-demo.png")
