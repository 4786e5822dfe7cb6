"""Snapshots of findings: build, write atomically (never overwriting), load and validate, re-apply.

A snapshot is a folder `<model>-<UTC timestamp>/` holding findings.json (schema below), report.md
and, when a screen exists, screen.svg. Loading reads JSON only: nothing in a file is executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from swtui import __version__
from swtui.core.errors import SnapshotError, UserInputError

SCHEMA_VERSION = 1
KIND = "swtui-snapshot"
JSON_NAME, MD_NAME, SVG_NAME = "findings.json", "report.md", "screen.svg"


class HashMismatch(SnapshotError):
    title = "Weight hash mismatch"


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"swtui": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "bitsandbytes", "textual"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def text_identity(text: str | None) -> dict:
    """Which text a perplexity was measured on: the bundled one or a given one, by hash."""
    from swtui.core.metrics import eval_text as bundled

    body = bundled() if text is None else text
    return {"bundled": text is None, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
            "chars": len(body)}


def build_snapshot(session, detection=None, probe=None, measurement=None, generation=None, prompt: str = "",
                   max_new_tokens: int = 24, created: str | None = None, comparison: dict | None = None,
                   sweeps: dict | None = None, eval_text: str | None = None) -> dict:
    """The snapshot of `session` now. `measurement`: a `metrics.Measurement` of this state (its
    perplexity, stopwords and generations); `generation`: texts of a refresh cut short after the
    generation (used when there is no measurement); `eval_text`: the text the perplexity was
    measured on, None for the bundled one (its hash is kept: a perplexity means nothing without it)."""
    lm = session.loaded
    probe = probe or (detection.probe if detection else None)
    threshold = detection.threshold if detection else None
    m = measurement
    perplexity = {v: x.perplexity for v, x in m.metrics.items()} if m else None
    stopwords = m.stopwords.to_dict() if m else None
    if m and any(x.generation is not None for x in m.metrics.values()):
        generation = {v: x.generation for v, x in m.metrics.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created": created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {"name": lm.name, "source": lm.source, "kind": lm.kind, "arch": session.adapter.arch,
                  "revision": lm.revision, "dtype": lm.dtype, "device": str(session.device),
                  "layers": session.adapter.n_layers, "params": lm.n_params, "file_sha256": lm.file_hash,
                  "weights_sha256": session.pristine_hash(), "down_proj": session.down_proj,
                  "current_weights_sha256": session.current_hash()},
        "versions": library_versions(),
        "prompts": {"probe": probe.prompt if probe else None, "generation": prompt, "max_new_tokens": max_new_tokens},
        "probe": {"threshold": threshold, "tokens": probe.tokens if probe else [],
                  "layers": [s.to_dict() for s in probe.layers] if probe else []},
        "detection": ({"stop_reason": detection.stop_reason, "rounds": detection.rounds,
                       "groups": [g.to_dict() for g in detection.groups],
                       "rule": detection.rule.text, "z": detection.options.z, "ratio": detection.options.ratio,
                       "in_threshold": detection.rule.in_threshold,
                       "impact_threshold": detection.options.impact_threshold if detection.options.impact else None}
                      if detection else None),
        "super_weights": [sw.to_dict() for sw in session.super_weights],
        "edits": session.ledger.summary(),
        "sa_restored": [list(k) for k in sorted(session.sa_restore)],
        "quantization": session.quant_config,
        "metrics": {"perplexity": perplexity, "stopwords": stopwords or None, "generation": generation or None,
                    "eval_text": text_identity(eval_text)},
        # the last side-by-side comparison ({"variants": [Variant dicts], "results": {name: Metrics}})
        # and sweeps ({kind: {"rows", "meta"}}); re-opening a snapshot restores the variants
        "comparison": comparison,
        "sweeps": sweeps or {},
    }


# -- writing ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def write_snapshot(data: dict, out_dir: str | os.PathLike, svg: str | None = None) -> Path:
    """Write JSON + Markdown (+ SVG) into a temp folder, then rename it into place.

    A crash or a full disk mid-write leaves only a `.tmp-*` folder that is removed, never a half
    snapshot; an existing snapshot is never overwritten (a -2, -3… suffix is added).
    """
    from swtui.core.report import markdown_report

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tmp-"))
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshots to {out}: {exc.strerror or exc}") from None
    try:
        _write_file(tmp / JSON_NAME, json.dumps(data, indent=1, default=float) + "\n")
        _write_file(tmp / MD_NAME, markdown_report(data, has_svg=svg is not None))
        if svg is not None:
            _write_file(tmp / SVG_NAME, svg)
        stamp = data.get("created", "").replace(":", "").replace("-", "")
        base = f"{_slug(data['model']['name'])}-{stamp or 'snapshot'}"
        for n in range(1, 1000):
            final = out / (base if n == 1 else f"{base}-{n}")
            if final.exists():
                continue
            try:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private
                os.rename(tmp, final)  # atomic on POSIX; fails if `final` appeared meanwhile
                return final
            except OSError:
                if final.exists():
                    continue
                raise
        raise SnapshotError(f"too many snapshots named {base} in {out}")
    except OSError as exc:
        raise SnapshotError(f"writing the snapshot failed: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_file(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


# -- loading ---------------------------------------------------------------------------------
_REQUIRED = {"schema_version": int, "kind": str, "created": str, "model": dict, "versions": dict, "prompts": dict,
             "probe": dict, "super_weights": list, "edits": list, "sa_restored": list, "metrics": dict}


def load_snapshot(path: str | os.PathLike) -> dict:
    """Read and validate a snapshot (folder or its findings.json). Raises SnapshotError."""
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
    validate(data, str(p))
    return data


def validate(data, where: str = "snapshot") -> None:
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise SnapshotError(f"{where} is not a swtui snapshot (no \"kind\": \"{KIND}\")")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise SnapshotError(f"{where}: schema_version must be an integer")
    if version > SCHEMA_VERSION:
        raise SnapshotError(f"{where} uses schema {version}; this swtui reads up to {SCHEMA_VERSION} — upgrade swtui")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise SnapshotError(f"{where}: field {key!r} must be a {kind.__name__}")
    model = data["model"]
    for key in ("name", "source", "weights_sha256"):
        if not isinstance(model.get(key), str):
            raise SnapshotError(f"{where}: model.{key} must be a string")
    for i, edit in enumerate(data["edits"]):
        if not (isinstance(edit, dict) and edit.get("op") in ("prune", "scale")
                and all(isinstance(edit.get(k), int) and edit[k] >= 0 for k in ("layer", "row", "col"))
                and isinstance(edit.get("factor"), (int, float))):
            raise SnapshotError(f"{where}: edits[{i}] is malformed")
    for i, sw in enumerate(data["super_weights"]):
        if not (isinstance(sw, dict) and all(isinstance(sw.get(k), int) for k in ("layer", "row", "col"))):
            raise SnapshotError(f"{where}: super_weights[{i}] is malformed")
    for i, key in enumerate(data["sa_restored"]):
        if not (isinstance(key, list) and len(key) == 3 and all(isinstance(v, int) for v in key)):
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


def model_source(data: dict) -> str | None:
    source = data["model"]["source"]
    return None if source == "demo" else source


def apply_snapshot(session, data: dict, force: bool = False, progress=None, cancel=None) -> list[str]:
    """Check the weight hash, then re-apply super weights, edits, SA restores and quantization."""
    from swtui.core.quant_session import apply_quant_config
    from swtui.core.session import SuperWeight

    notes = []
    have, want = session.pristine_hash(), data["model"]["weights_sha256"]
    if have != want:
        if not force:
            raise HashMismatch(f"the model's weights (sha256 {have[:12]}…) differ from the snapshot's "
                               f"({want[:12]}…); pass --force to open it anyway")
        notes.append("weight hash mismatch: opened anyway (--force)")
    fields = set(SuperWeight.__dataclass_fields__)
    try:
        for sw in data["super_weights"]:
            session.adapter.check_coords(sw["layer"], sw["row"], sw["col"])
            restored = SuperWeight(**{k: v for k, v in sw.items() if k in fields})
            restored.source = "snapshot" if restored.source != "user" else "user"
            if session.find_super_weight(restored.key) is None:
                session.super_weights.append(restored)
        for edit in data["edits"]:
            key = (edit["layer"], edit["row"], edit["col"])
            if edit["op"] == "prune":
                session.ledger.prune(*key)
            else:
                session.ledger.scale(*key, edit["factor"])
        for key in data["sa_restored"]:
            session.set_sa_restore(*key, on=True)
        if data.get("quantization"):  # the weights are a function of the state: order is free
            apply_quant_config(session, data["quantization"], progress, cancel)
    except (UserInputError, TypeError) as exc:
        raise SnapshotError(f"the snapshot does not fit this model: {exc}") from None
    return notes
