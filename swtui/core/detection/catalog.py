"""Published super weight coordinates with their provenance, matched to a model by name.

Used only to label findings and to say whether a census agrees; detection never reads it. Each
catalog entry holds *findings*, one per source (the paper's Table 2, the reference code's model
map, an iterative detector's results, a published census, swtui's own finding with its version…),
kept side by side where they disagree (OLMo-1B's second super weight: layer 1 or 2). Every source
names where it comes from; swtui's own earlier finding is *not independent* and never counts
towards the overall agreement.
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


def sources() -> dict[str, dict]:
    """Source key -> {what, where (repository/paper and file), independent}."""
    return _data()["sources"]


def independent(source: str) -> bool:
    """Whether a finding from `source` is evidence from outside swtui (its own earlier finding is not)."""
    return bool(sources()[source]["independent"])


def lookup(model_name: str) -> dict | None:
    key = normalize(model_name)
    for entry in entries():
        if key in {normalize(a) for a in entry["aliases"]}:
            return entry
    return None


def source_label(finding: dict) -> str:
    """'paper-table-2', or 'swtui 0.1.0' for a finding that carries its version."""
    return finding["source"] + (f" {finding['version']}" if finding.get("version") else "")


def _marked(finding: dict) -> str:
    """The source label, marked when the source is not independent: 'swtui 0.1.0, not independent'."""
    return source_label(finding) + ("" if independent(finding["source"]) else ", not independent")


def published(entry: dict) -> dict[tuple[int, int, int], list[str]]:
    """Every published coordinate of an entry -> the sources that list it."""
    out: dict[tuple[int, int, int], list[str]] = {}
    for f in entry["findings"]:
        for c in f.get("super_weights", []):
            out.setdefault(tuple(c), []).append(_marked(f))
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
    massive channels judged to matter (channel numbers). Per source: `independent` (False for
    swtui's own earlier finding), `agrees` "yes" (everything it lists was found), "partly" or "no"
    (None for a source that only `tested` rows it does not call critical), `missing` what it lists
    that was not found, `extra` what was found that it does not list. Overall `agrees` counts the
    independent sources only: "yes" / "no" when every one says so, "mixed" otherwise; None when
    none lists the model (`basis` says which case; `own` is swtui's own earlier finding's verdict).
    """
    entry = lookup(model_name)
    if entry is None:
        return {"entry": None, "agrees": None, "basis": "not in the catalog", "independent": 0, "own": None,
                "sources": [], "summary": "not in the catalog"}
    found = {tuple(c) for c in super_weights}
    rows = {c[:2] for c in found}
    chans = set(channels)
    per = [_source_verdict(f, found, rows, chans) for f in entry["findings"]]
    judged = [p for p in per if p["independent"] and p["agrees"] is not None]
    verdicts = {p["agrees"] for p in judged}
    overall = None if not judged else "yes" if verdicts == {"yes"} else "no" if verdicts == {"no"} else "mixed"
    own = [p for p in per if not p["independent"]]
    if judged:
        basis = f"{len(judged)} independent source{'s' if len(judged) > 1 else ''}"
    elif own:
        basis = "only swtui's own earlier finding (not independent)"
    else:
        basis = "no independent source lists a super weight here"
    theirs = [f"{p['source']}: {p['agrees'] or 'tested rows only, none called critical'}"
              + (f" (+{len(p['extra'])} unlisted)" if p["extra"] else "") for p in per if p["independent"]]
    mine = [f"{p['source']} {p['agrees']}" for p in own]
    if judged:
        summary = "; ".join(theirs + [f"{m} (not independent)" for m in mine])
    elif own:
        summary = "; ".join([f"{basis}: {', '.join(mine)}"] + theirs)
    else:
        summary = "; ".join([basis] + theirs)
    return {"entry": entry["name"], "agrees": overall, "basis": basis, "independent": len(judged),
            "own": own[0]["agrees"] if own else None, "sources": per, "summary": summary}


def _source_verdict(f: dict, found: set, rows: set, chans: set) -> dict:
    """One source's view: what it lists, whether each was found, what was found beyond it."""
    def plain(kind, v, *_):
        return [kind, list(v) if isinstance(v, tuple) else v]

    items = ([("weight", tuple(c), tuple(c) in found) for c in f.get("super_weights", [])]
             + [("row", tuple(r), tuple(r) in rows) for r in f.get("rows", [])]
             + [("channel", ch, ch in chans) for ch in f.get("channels", [])])
    tested = [{"row": list(r), "found": tuple(r) in rows} for r in f.get("tested_rows", [])]
    hits = sum(ok for _, _, ok in items)
    listed = {tuple(c) for c in f.get("super_weights", [])}
    listed_rows = {tuple(r) for r in f.get("rows", [])}
    # a source that lists only channels or rows does not claim the weights within them are all
    extra = sorted(c for c in found if c not in listed and c[:2] not in listed_rows) if listed else []
    if items:
        agrees = "yes" if hits == len(items) else ("partly" if hits else "no")
    elif tested:  # it tested rows and calls none critical: nothing it claims to compare with
        agrees = None
    else:  # a source that found nothing there agrees when nothing is found
        agrees = "yes" if not found else "no"
    return {"source": source_label(f), "independent": independent(f["source"]), "agrees": agrees,
            "listed": [plain(*i) for i in items], "missing": [plain(*i) for i in items if not i[2]],
            "tested": tested, "extra": [list(c) for c in extra], "published": f.get("published"),
            "note": f.get("note")}
