"""swtui/core never imports Textual; swtui/tui never does torch work itself."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE_MODULES = sorted(p.stem for p in (ROOT / "swtui" / "core").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module):
    code = f"import sys, swtui.core.{module}; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tui_has_no_torch_imports():
    offenders = []
    for path in (ROOT / "swtui" / "tui").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import torch", "from torch", "import transformers", "from transformers")):
                offenders.append(f"{path.name}: {stripped}")
    assert offenders == []


def test_tui_starts_without_torch():
    """The first frame can appear before torch is imported: the app module does not import it."""
    code = "import sys, swtui.cli, swtui.tui.app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_palette_lists_every_action():
    from swtui.tui.app import SwtuiApp
    from swtui.tui.commands import ACTIONS

    for _, action, _ in ACTIONS:
        assert hasattr(SwtuiApp, f"action_{action}") or action in ("quit", "help"), action
    bound = {b.action.split("(")[0] for b in SwtuiApp.BINDINGS}
    listed = {a for _, a, _ in ACTIONS}
    assert bound - {"chart_move", "table_move"} <= listed
