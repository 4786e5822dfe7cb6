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
