"""Chromium for the browser test of `swtui serve` (tests/e2e/test_serve_browser.py) and the
picture it makes (tests/capture_browser_demo.py): its flags in a closed network, how the screen is
read out of xterm.js, where the browser is, a free port."""

from __future__ import annotations

import os
import shutil
import socket

#: what Chromium needs as root in a closed network: no sandbox, no GPU, and none of its own
#: background connections (refused here, and they hold the page up)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: xterm.js paints on a canvas, so the screen's text is not in the DOM. textual.js keeps its xterm
#: Terminal on a local object and sets that object's `fitAddon` right after `terminal`: a setter on
#: Object.prototype catches the object once, and the test reads the screen from xterm's buffer.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "fitAddon", {configurable: true, set(value) {
  window.__textualTerminal = this;
  Object.defineProperty(this, "fitAddon", {value, writable: true, configurable: true, enumerable: true});
}});
"""
READ_SCREEN = """() => {
  const term = window.__textualTerminal && window.__textualTerminal.terminal;
  if (!term) return null;
  const lines = [];
  for (let y = 0; y < term.rows; y++) lines.push(term.buffer.active.getLine(y).translateToString(true));
  return lines.join("\\n");
}"""

def chromium() -> str | None:
    for name in (os.environ.get("SWTUI_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
