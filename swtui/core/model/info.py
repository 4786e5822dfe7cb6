"""The one description of a loaded model (`ModelInfo`): what `Session.info()` builds and the
protocol's `Loaded` event, `--json` reports and snapshots carry. No torch (the TUI reads it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from swtui.core.model.source_quant import SourceQuant


@dataclass(frozen=True)
class ModelInfo:
    """The one description of a loaded model: the status bar, `--json` reports and snapshots all
    read it (`Session.info()` builds it)."""
    name: str
    source: str
    kind: str  # "gguf" | "dir" | "hub" | "tiny"
    arch: str
    layers: int
    params: int
    device: str
    dtype: str
    revision: str | None
    file_sha256: str | None
    source_quant: SourceQuant  # how the source stored its weights (GGUF Q4_1, a bnb checkpoint, float)

    def to_json(self) -> dict:
        from swtui.core.model.source_quant import to_json

        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["source_quant"] = to_json(self.source_quant)
        return out
