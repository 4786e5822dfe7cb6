"""A snapshot's schema: reading a `findings.json`, checking it field by field, and migrating
schema 1 to the current one. A file that does not fit is a `SnapshotError` naming the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from swtui.core.errors import SnapshotError

SCHEMA_VERSION = 2
KIND = "swtui-snapshot"
JSON_NAME = "findings.json"


_REQUIRED = {"schema_version": int, "kind": str, "created": str, "model": dict, "versions": dict, "prompts": dict,
             "probe": dict, "super_weights": list, "edits": list, "sa_restored": list, "metrics": dict}
#: schema 2 adds these (every key must be present; a null is only allowed where the type says so)
_REQUIRED_V2 = {"zero_writes": list, "zero_masks": dict, "quantization": (dict, type(None)),
                "comparison": (dict, type(None)), "sweeps": dict, "detection": (dict, type(None))}
_METRICS_V2 = ("perplexity", "stopwords", "generation", "eval_text")


def load_snapshot(path: str | os.PathLike) -> dict:
    """Read, validate and migrate a snapshot (folder or its findings.json) to the current schema.

    Raises SnapshotError. A migrated schema-1 snapshot carries `"migrated_from": 1`."""
    p = Path(path)
    if p.is_dir():
        p = p / JSON_NAME
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SnapshotError(f"{p} is not valid JSON ({exc})") from None
    return validate(data, str(p))


def validate(data, where: str = "snapshot") -> dict:
    """Check `data` against its schema; returns it in the current schema (schema 1 migrated)."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise SnapshotError(f"{where} is not a swtui snapshot (no \"kind\": \"{KIND}\")")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SnapshotError(f"{where}: schema_version must be an integer")
    if version > SCHEMA_VERSION:
        raise SnapshotError(f"{where} uses schema {version}; this swtui reads up to {SCHEMA_VERSION} — upgrade swtui")
    if version < 1:
        raise SnapshotError(f"{where}: schema_version {version} does not exist")
    _validate_v1(data, where)
    if version == 1:
        data = migrate(data)
    _validate_v2(data, where)
    return data


def _validate_v1(data: dict, where: str) -> None:
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise SnapshotError(f"{where}: field {key!r} must be a {kind.__name__}")
    model = data["model"]
    for key in ("name", "source", "weights_sha256"):
        if not isinstance(model.get(key), str):
            raise SnapshotError(f"{where}: model.{key} must be a string")
    for i, edit in enumerate(data["edits"]):
        if not (isinstance(edit, dict) and edit.get("op") in ("prune", "scale")
                and all(_nonneg_int(edit.get(k)) for k in ("layer", "row", "col"))
                and isinstance(edit.get("factor"), (int, float)) and not isinstance(edit.get("factor"), bool)):
            raise SnapshotError(f"{where}: edits[{i}] is malformed")
    for i, sw in enumerate(data["super_weights"]):
        if not (isinstance(sw, dict) and all(_nonneg_int(sw.get(k)) for k in ("layer", "row", "col"))):
            raise SnapshotError(f"{where}: super_weights[{i}] is malformed")
    for i, key in enumerate(data["sa_restored"]):
        if not (isinstance(key, list) and len(key) == 3 and all(_nonneg_int(v) for v in key)):
            raise SnapshotError(f"{where}: sa_restored[{i}] is malformed")
    if data.get("quantization") is not None and not isinstance(data["quantization"], dict):
        raise SnapshotError(f"{where}: quantization must be an object or null")
    comparison = data.get("comparison")
    if comparison is not None:
        variants = comparison.get("variants") if isinstance(comparison, dict) else None
        if not isinstance(variants, list) or not all(
                isinstance(v, dict) and isinstance(v.get("name"), str)
                and (v.get("config") is None or isinstance(v.get("config"), dict)) for v in variants):
            raise SnapshotError(f"{where}: comparison.variants must be a list of {{name, config}}")


def _nonneg_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def migrate(data: dict) -> dict:
    """Schema 1 -> 2. Schema 1 did not record zero writes nor control masks (a session that had
    them reopens without them: its weights hash or metrics then differ, and `open` says so); the
    fields later schema-1 writers added (current weights hash, the text's hash, comparison, sweeps)
    are null where an older file lacks them, i.e. "not saved" — never assumed to match."""
    out = dict(data)
    out["model"] = dict(data["model"])
    out["model"].setdefault("current_weights_sha256", None)
    out["model"].setdefault("source_quant", None)  # not read before schema 2's later writers: unknown
    out["prompts"] = dict(data["prompts"])
    out["prompts"]["generation"] = out["prompts"].get("generation") or None  # "" was "none given"
    out["prompts"].setdefault("probe", None)
    out["metrics"] = {k: (data["metrics"].get(k) or None) for k in _METRICS_V2}
    for key in ("detection", "quantization", "comparison"):
        out.setdefault(key, None)
    out.setdefault("sweeps", {})
    out["zero_writes"], out["zero_masks"] = [], {}
    out["schema_version"], out["migrated_from"] = SCHEMA_VERSION, 1
    return out


def _validate_v2(data: dict, where: str) -> None:
    """Schema 2: every field present (a migrated schema-1 file may lack what schema 1 did not say)."""
    migrated = data.get("migrated_from") == 1
    for key, kind in _REQUIRED_V2.items():
        if key not in data:
            raise SnapshotError(f"{where}: field {key!r} is missing (schema {SCHEMA_VERSION})")
        if not isinstance(data[key], kind):
            raise SnapshotError(f"{where}: field {key!r} has the wrong type")
    model = data["model"]
    if "current_weights_sha256" not in model or not (
            isinstance(model["current_weights_sha256"], str) or (migrated and model["current_weights_sha256"] is None)):
        raise SnapshotError(f"{where}: model.current_weights_sha256 must be a string")
    prompts = data["prompts"]
    for key in ("probe", "generation", "max_new_tokens"):
        if key not in prompts:
            raise SnapshotError(f"{where}: field prompts.{key} is missing")
    gen = prompts["generation"]
    if not ((isinstance(gen, str) and gen.strip()) or (migrated and gen is None)):
        raise SnapshotError(f"{where}: prompts.generation must be a non-empty string")
    if not (_nonneg_int(prompts["max_new_tokens"]) and prompts["max_new_tokens"] > 0):
        raise SnapshotError(f"{where}: prompts.max_new_tokens must be a positive integer")
    for i, w in enumerate(data["zero_writes"]):
        if not (isinstance(w, list) and len(w) == 2 and all(_nonneg_int(v) for v in w)):
            raise SnapshotError(f"{where}: zero_writes[{i}] is malformed")
    for name, idx in data["zero_masks"].items():
        if not (isinstance(idx, list) and idx and all(_nonneg_int(v) for v in idx)):
            raise SnapshotError(f"{where}: zero_masks[{name!r}] must be a non-empty list of flat indices")
    metrics = data["metrics"]
    for key in _METRICS_V2:
        if key not in metrics:
            raise SnapshotError(f"{where}: field metrics.{key} is missing")
    for key in ("perplexity", "generation"):
        value = metrics[key]
        if value is not None and not (isinstance(value, dict) and set(value) >= {"base", "current"}):
            raise SnapshotError(f"{where}: metrics.{key} must be {{base, current}} or null")
    stop = metrics["stopwords"]
    if stop is not None and not (isinstance(stop, dict) and isinstance(stop.get("mass"), dict)):
        raise SnapshotError(f"{where}: metrics.stopwords must hold a mass {{base, current}} or be null")
    text = metrics["eval_text"]
    if not ((isinstance(text, dict) and isinstance(text.get("sha256"), str) and _nonneg_int(text.get("chars")))
            or (migrated and text is None)):
        raise SnapshotError(f"{where}: metrics.eval_text must be {{bundled, sha256, chars}}")
