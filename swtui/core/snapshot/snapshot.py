"""Snapshots of findings: build, write atomically (never overwriting), load and validate, re-apply.

A snapshot is a folder `<model>-<UTC timestamp>/` holding findings.json (schema below), report.md
and, when a screen exists, screen.svg. Loading reads JSON only: nothing in a file is executed.

A snapshot is the whole state (`state_record`: scalar edits, SA restores, zeroed MLP writes, the
control's zero masks, the quantization config with its held-out set) plus what it measured.
Re-applying it must reproduce the state, both arms' weight hashes and the metrics; any
difference is an error (`StateMismatch`), never a silent fallback. Schema 1 snapshots (which
did not record zero writes nor masks) are migrated on load (`migrate`).
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
from swtui.core.snapshot.schema import (JSON_NAME, KIND, SCHEMA_VERSION, load_snapshot,  # noqa: F401 - re-exported
                                        migrate, validate)

MD_NAME, SVG_NAME = "report.md", "screen.svg"


class HashMismatch(SnapshotError):
    title = "Weight hash mismatch"


class StateMismatch(SnapshotError):
    """The re-applied snapshot does not reproduce its state, weights or metrics."""

    title = "Snapshot mismatch"


#: the fields of findings.json that are the model state (`state_record`)
STATE_FIELDS = ("edits", "sa_restored", "zero_writes", "zero_masks", "quantization")
#: relative tolerance of re-measured perplexity and stopword mass (thread counts change reduction order)
RTOL = 1e-5
NOT_SAVED, OTHER_TEXT = "not saved", "other text"


def state_record(session) -> dict:
    """The session's state as plain data: equal records <=> equal `session.state_key()`."""
    return {"edits": session.ledger.summary(),
            "sa_restored": [list(k) for k in sorted(session.sa_restore)],
            "zero_writes": [list(k) for k in sorted(session.zero_writes)],
            "zero_masks": {name: [int(i) for i in idx.tolist()]
                           for name, idx in sorted(session.ledger.zero_masks.items())},
            "quantization": session.quant_config,
            # fused experts pruned whole (only where there are any: dense snapshots are unchanged)
            **({"pruned_experts": [list(k) for k in sorted(session.ledger.pruned_experts)]}
               if session.ledger.pruned_experts else {})}


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
    from swtui.core.evidence.metrics import eval_text as bundled

    body = bundled() if text is None else text
    return {"bundled": text is None, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
            "chars": len(body)}


def build_snapshot(session, detection=None, probe=None, measurement=None, generation=None, prompt: str | None = None,
                   max_new_tokens: int = 24, created: str | None = None, comparison: dict | None = None,
                   sweeps: dict | None = None, eval_text: str | None = None) -> dict:
    """The snapshot of `session` now. `measurement`: a `metrics.Measurement` of this state (its
    perplexity, stopwords and generations); `generation`: texts of a refresh cut short after the
    generation (used when there is no measurement); `eval_text`: the text the perplexity was
    measured on, None for the bundled one (its hash is kept: a perplexity means nothing without it)."""
    from swtui.core.defaults import GEN_PROMPT
    from swtui.core.detection.findings import candidate_json, judged_json

    prompt = prompt or GEN_PROMPT  # recorded as such: `open` generates from the prompt in the file
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
        "model": {**session.info().to_json(), "weights_sha256": session.pristine_hash(),
                  "down_proj": session.down_proj, "current_weights_sha256": session.current_hash()},
        "versions": library_versions(),
        "prompts": {"probe": probe.prompt if probe else None, "generation": prompt, "max_new_tokens": max_new_tokens},
        "probe": {"threshold": threshold, "tokens": probe.tokens if probe else [],
                  "layers": [s.to_dict() for s in probe.layers] if probe else []},
        "detection": ({"stop_reason": detection.stop_reason, "rounds": detection.rounds,
                       "groups": [g.to_dict() for g in detection.groups],
                       "rule": detection.rule.text, "z": detection.options.z, "ratio": detection.options.ratio,
                       "in_threshold": detection.rule.in_threshold,
                       **judged_json(detection)}  # impact_threshold, eval_tokens, interval method, channels
                      if detection else None),
        "super_weights": [candidate_json(sw) for sw in session.super_weights],
        **state_record(session),  # edits, sa_restored, zero_writes, zero_masks, quantization
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
    from swtui.core.snapshot.report import markdown_report

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


# -- loading: swtui.core.snapshot.schema --------------------------------------------------------
def model_source(data: dict) -> str | None:
    source = data["model"]["source"]
    return None if source == "demo" else source


def apply_snapshot(session, data: dict, force: bool = False, progress=None, cancel=None) -> list[str]:
    """Check the pristine weight hash, re-apply the whole state (super weights, edits, SA
    restores, zero writes, control masks, quantization), then check that the state and the
    current weights hash are the snapshot's. Raises HashMismatch (pristine weights differ) or
    StateMismatch unless `force`, which turns both into notes. Returns notes."""
    import torch

    from swtui.core.quant.session import apply_quant_config
    from swtui.core.detection.findings import candidate_from_json
    from swtui.core.errors import EditError

    notes = []
    if data.get("migrated_from") == 1:
        notes.append("schema 1 snapshot: it did not record zeroed MLP writes nor control masks (opened without them)")
    have, want = session.pristine_hash(), data["model"]["weights_sha256"]
    if have != want:
        if not force:
            raise HashMismatch(f"the model's weights (sha256 {have[:12]}…) differ from the snapshot's "
                               f"({want[:12]}…); pass --force to open it anyway")
        notes.append("weight hash mismatch: opened anyway (--force)")
    params = dict(session.model.named_parameters())
    try:
        for sw in data["super_weights"]:
            session.adapter.check_coords(sw["layer"], sw["row"], sw["col"], sw.get("expert"))
            restored = candidate_from_json(sw)
            restored.source = "snapshot" if restored.source != "user" else "user"
            if session.find_super_weight(restored.key) is None:
                session.super_weights.append(restored)
        for edit in data["edits"]:
            key = (edit["layer"], edit["row"], edit["col"]) + ((edit["expert"],) if "expert" in edit else ())
            if edit["op"] == "prune":
                session.ledger.prune(*key)
            else:
                session.ledger.scale(*key, edit["factor"])
        for key in data["sa_restored"]:
            session.set_sa_restore(*key, on=True)
        if data.get("pruned_experts"):
            session.ledger.set_pruned_experts(tuple(k) for k in data["pruned_experts"])
        for layer, channel in data["zero_writes"]:
            session.set_zero_write(layer, channel, on=True)
        masks = {}
        for name, idx in data["zero_masks"].items():
            if name not in params or max(idx) >= params[name].numel():
                raise UserInputError(f"zero mask {name!r} does not fit this model")
            masks[name] = torch.tensor(sorted(set(idx)), dtype=torch.long)
        if masks:
            session.ledger.set_zeros(masks)
        if data["quantization"]:  # the weights are a function of the state: order is free
            apply_quant_config(session, data["quantization"], progress, cancel)
    except (UserInputError, EditError, TypeError, IndexError) as exc:
        raise SnapshotError(f"the snapshot does not fit this model: {exc}") from None
    problems = state_differences(session, data)
    if problems:
        message = "the re-applied snapshot differs from the one saved: " + "; ".join(problems)
        if not force:
            raise StateMismatch(message)
        notes.append(message + " (--force)")
    elif data["model"]["current_weights_sha256"] is None:
        notes.append("the snapshot did not save its current weights hash: not checked")
    return notes


def state_differences(session, data: dict) -> list[str]:
    """What differs between the session's state and current weights and the snapshot's."""
    problems = []
    record = state_record(session)
    for key in STATE_FIELDS:
        if record[key] != data[key]:
            problems.append(f"{key} differ")
    if record.get("pruned_experts", []) != data.get("pruned_experts", []):
        problems.append("pruned_experts differ")
    want = data["model"]["current_weights_sha256"]
    if want is not None and session.current_hash() != want:
        problems.append(f"current weights sha256 {session.current_hash()[:12]}… ≠ {want[:12]}… saved")
    return problems


def compare_metrics(data: dict, measurement, eval_text: str | None) -> tuple[dict, list[str]]:
    """Compare a re-measurement of the reopened state with the snapshot's metrics.

    Returns ({metric: True | False | "not saved" | "other text"}, [differences in words]).
    `measurement` was taken with the snapshot's generation prompt and max_new_tokens and on
    `eval_text` (None: the bundled text); a perplexity and a stopword mass (measured over the same
    windows) are compared only on the text they were saved on, a metric the snapshot did not save
    is "not saved" — never "matched"."""
    saved = data["metrics"]
    m = measurement.metrics
    matches, problems = {}, []

    def close(a, b) -> bool:
        return abs(a - b) <= RTOL * max(1.0, abs(b))

    ppl, saved_text = saved["perplexity"], saved["eval_text"]
    other_text = saved_text is not None and saved_text["sha256"] != text_identity(eval_text)["sha256"]
    if ppl is None or saved_text is None:
        matches["perplexity"] = NOT_SAVED
    elif other_text:
        matches["perplexity"] = OTHER_TEXT
    else:
        bad = [f"perplexity {v} {m[v].perplexity:,.6g} ≠ {ppl[v]:,.6g} saved" for v in ("base", "current")
               if not close(m[v].perplexity, ppl[v])]
        matches["perplexity"] = not bad
        problems += bad
    stop = saved["stopwords"]
    if stop is None:
        matches["stopwords"] = NOT_SAVED
    elif other_text:  # the mass is over every position of the same windows as the perplexity
        matches["stopwords"] = OTHER_TEXT
    else:
        bad = [f"stopword mass {v} {m[v].stopword_mass:.6g} ≠ {stop['mass'][v]:.6g} saved" for v in ("base", "current")
               if not close(m[v].stopword_mass, stop["mass"][v])]
        matches["stopwords"] = not bad
        problems += bad
    gen = saved["generation"]
    if gen is None or data["prompts"]["generation"] is None:
        matches["generation"] = NOT_SAVED
    else:
        bad = [f"generation {v} {m[v].generation!r} ≠ {gen[v]!r} saved" for v in ("base", "current")
               if m[v].generation != gen[v]]
        matches["generation"] = not bad
        problems += bad
    return matches, problems
