"""Published super weight coordinates, matched to a model by name. Used only for labelling."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

_QUANT_SUFFIX = re.compile(r"[.\-_](q\d\w*|iq\d\w*|f16|f32|bf16|gguf)$", re.IGNORECASE)


def normalize(name: str) -> str:
    """'meta-llama/Llama-2-7b-hf' -> 'llama27bhf'; drops the org, GGUF quant suffixes, punctuation, case."""
    name = name.strip().rstrip("/").split("/")[-1]
    while True:
        stripped = _QUANT_SUFFIX.sub("", name)
        if stripped == name:
            break
        name = stripped
    return re.sub(r"[^a-z0-9]", "", name.lower())


@lru_cache(maxsize=1)
def entries() -> list[dict]:
    data = json.loads(resources.files("swtui.core").joinpath("data", "catalog.json").read_text())
    return data["models"]


def lookup(model_name: str) -> dict | None:
    key = normalize(model_name)
    for entry in entries():
        if key in {normalize(a) for a in entry["aliases"]}:
            return entry
    return None


def label_matches(model_name: str, coords) -> dict[tuple[int, int, int], str]:
    """{(layer,row,col): 'published in …'} for the given coordinates that the catalog lists."""
    entry = lookup(model_name)
    if entry is None:
        return {}
    known = {tuple(c) for c in entry["super_weights"]}
    return {tuple(c): f"{entry['name']} ({entry['source']})" for c in coords if tuple(c) in known}
