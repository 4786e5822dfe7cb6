"""Published super weight coordinates with their provenance, matched to a model by name.

Used only to label findings and to say whether a census agrees; detection never reads it. Each
catalog entry holds *findings*, one per source (the paper's Table 2, the reference code's model
map, a published census, swtui's own finding with its version…), kept side by side where they
disagree (OLMo-1B's second super weight: layer 1 or 2).
"""

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
def _data() -> dict:
    return json.loads(resources.files("swtui.core").joinpath("data", "catalog.json").read_text())


def entries() -> list[dict]:
    return _data()["models"]


def sources() -> dict[str, str]:
    """Source key -> what it is."""
    return _data()["sources"]


def lookup(model_name: str) -> dict | None:
    key = normalize(model_name)
    for entry in entries():
        if key in {normalize(a) for a in entry["aliases"]}:
            return entry
    return None


def source_label(finding: dict) -> str:
    """'paper-table-2', or 'swtui 0.1.0' for a finding that carries its version."""
    return finding["source"] + (f" {finding['version']}" if finding.get("version") else "")


def published(entry: dict) -> dict[tuple[int, int, int], list[str]]:
    """Every published coordinate of an entry -> the sources that list it."""
    out: dict[tuple[int, int, int], list[str]] = {}
    for f in entry["findings"]:
        for c in f.get("super_weights", []):
            out.setdefault(tuple(c), []).append(source_label(f))
    return out


def label_matches(model_name: str, coords) -> dict[tuple[int, int, int], str]:
    """{(layer,row,col): 'Name (source, source)'} for the given coordinates that the catalog lists."""
    entry = lookup(model_name)
    if entry is None:
        return {}
    known = published(entry)
    return {tuple(c): f"{entry['name']} ({', '.join(known[tuple(c)])})" for c in coords if tuple(c) in known}


def compare(model_name: str, super_weights, channels) -> dict:
    """What the catalog says about `model_name` and, source by source, whether a finding agrees.

    `super_weights`: the (layer, row, col) judged super weights or group members; `channels`: the
    massive channels judged to matter (channel numbers). Per source: `agrees` "yes" (everything it
    lists was found), "partly" or "no", `missing` what it lists that was not found, `extra` what
    was found that it does not list. Overall `agrees`: "yes" / "no" when every source says so,
    "mixed" otherwise (the sources themselves may disagree); None when the model is not listed.
    """
    entry = lookup(model_name)
    if entry is None:
        return {"entry": None, "agrees": None, "sources": [], "summary": "not in the catalog"}
    found = {tuple(c) for c in super_weights}
    rows = {c[:2] for c in found}
    chans = set(channels)
    per = []
    for f in entry["findings"]:
        items = ([("weight", tuple(c), tuple(c) in found) for c in f.get("super_weights", [])]
                 + [("row", tuple(r), tuple(r) in rows) for r in f.get("rows", [])]
                 + [("channel", ch, ch in chans) for ch in f.get("channels", [])])
        hits = sum(ok for _, _, ok in items)
        listed = {tuple(c) for c in f.get("super_weights", [])}
        listed_rows = {tuple(r) for r in f.get("rows", [])}
        # a source that lists only channels or rows does not claim the weights within them are all
        extra = sorted(c for c in found if c not in listed and c[:2] not in listed_rows) if listed else []
        agrees = "yes" if items and hits == len(items) else ("partly" if hits else "no")
        if not items:  # a source that found nothing there agrees when nothing is found
            agrees = "yes" if not found else "no"
        per.append({"source": source_label(f), "agrees": agrees, "listed": [[k, list(v) if isinstance(v, tuple) else v]
                                                                          for k, v, _ in items],
                    "missing": [[k, list(v) if isinstance(v, tuple) else v] for k, v, ok in items if not ok],
                    "extra": [list(c) for c in extra], "published": f.get("published"), "note": f.get("note")})
    verdicts = {p["agrees"] for p in per}
    overall = "yes" if verdicts == {"yes"} else ("no" if verdicts == {"no"} else "mixed")
    summary = "; ".join(f"{p['source']}: {p['agrees']}" + (f" (+{len(p['extra'])} unlisted)" if p["extra"] else "")
                        for p in per)
    return {"entry": entry["name"], "agrees": overall, "sources": per, "summary": summary}
