"""The census: every model under some paths (and, asked, the local Hugging Face cache), scanned one
after another with `scan`'s detection, verdicts and intervals, one row per model.

Long work done right: each model is freed before the next is loaded (peak memory is the largest
model, not the sum), a model that fails to load or runs out of memory becomes a row with its
error and the run goes on, and each finished row is cached under (the weights' content hash, the
loading and detection options with the device and dtype they resolve to, the swtui, torch and
transformers versions), so an interrupted census resumes where it stopped and a row computed
elsewhere is not reused. Errors are not cached: a model that failed is tried again next time.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from swtui import __version__
from swtui.core.errors import SwtuiError, UserInputError
from swtui.core.verdicts import ACTIVATION, GROUP, SUPER

if TYPE_CHECKING:
    from swtui.core.detection.detect import DetectOptions
    from swtui.core.model.loading import LoadOptions

#: progress(model index, stage, fraction or None)
CensusProgress = Callable[[int, str, "float | None"], None]
#: bump when a row's form changes: older cached rows are then recomputed (2: `environment`)
ROW_VERSION = 2
#: the verdicts of a massive channel that matters (what the catalog's channels are compared with)
MATTERS = (SUPER, GROUP, ACTIVATION)


@dataclass(frozen=True)
class Target:
    """A model the census found: what `load_model` takes, and where its weights are."""
    source: str  # a path, or a hub id for a model of the Hugging Face cache
    kind: str  # "gguf" | "dir" | "hub"
    path: Path  # the .gguf file or the folder holding config.json and the weights

    @property
    def label(self) -> str:
        """How the census names it before it is loaded: the hub id, or the file or folder name."""
        return self.source if self.kind == "hub" else self.path.name


# -- discovery --------------------------------------------------------------------------------
def discover(paths: list[str], hf_cache: bool = False) -> list[Target]:
    """Every GGUF file and Hugging Face model folder under `paths` (in path order, each walked in
    name order), then every causal LM of the local HF cache; duplicates once."""
    found: list[Target] = []
    for text in paths:
        path = Path(text).expanduser()
        if not path.exists():
            raise UserInputError(f"census: no such file or directory: {text}")
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise UserInputError(f"census: {text} is a file but not .gguf; pass .gguf files or folders")
            found.append(Target(str(path), "gguf", path))
        else:
            found.extend(_walk(path))
    if hf_cache:
        found.extend(hf_cache_targets())
    seen, unique = set(), []
    for t in found:
        key = t.source if t.kind == "hub" else str(t.path.resolve())
        if key not in seen:
            seen.add(key)
            unique.append(t)
    return unique


def _walk(root: Path) -> Iterator[Target]:
    """A folder with config.json is one model (not descended into); otherwise its .gguf files and
    its subfolders, in name order. Hidden entries are skipped."""
    if (root / "config.json").is_file():
        yield Target(str(root), "dir", root)
        return
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError:
        return
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_dir():
            yield from _walk(p)
        elif p.suffix.lower() == ".gguf" and p.is_file():
            yield Target(str(p), "gguf", p)


def hf_cache_root() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def hf_cache_targets() -> list[Target]:
    """Every model of the local HF cache whose main snapshot's config names a causal LM."""
    root = hf_cache_root()
    targets = []
    for repo in sorted(root.glob("models--*")):
        try:
            commit = (repo / "refs" / "main").read_text().strip()
        except OSError:
            continue  # no main ref: nothing `load_model(hub id)` could resolve
        snap = repo / "snapshots" / commit
        if is_causal_lm(snap / "config.json"):
            repo_id = repo.name.removeprefix("models--").replace("--", "/")
            targets.append(Target(repo_id, "hub", snap))
    return targets


def is_causal_lm(config_path: Path) -> bool:
    """config.json names an architecture with a language-modelling head."""
    try:
        archs = json.loads(config_path.read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return False
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


# -- the cache --------------------------------------------------------------------------------
def content_hash(target: Target, progress=None) -> str:
    """SHA-256 of the weights as stored: the GGUF file, or config.json and every weights file of
    a folder (each file's hash memoised by path, size and mtime in gguf_cache's index)."""
    from swtui.core.model.gguf_cache import file_sha256

    if target.path.is_file():
        return file_sha256(target.path, progress)
    parts = []
    for p in sorted(target.path.iterdir(), key=lambda p: p.name):
        if p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".pt"):
            parts.append(f"{p.name}:{file_sha256(p.resolve(), progress)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def library_versions() -> dict:
    """The versions a row's numbers depend on besides the weights and options."""
    import torch
    import transformers

    return {"swtui": __version__, "torch": torch.__version__, "transformers": transformers.__version__}


def environment(load) -> dict:
    """Where and with what a row is computed: the device and dtype `load` resolves to (never
    "auto") and the library versions. Recorded in the cache key and in the row."""
    from swtui.core.model.loading import resolve_placement

    device, dtype = resolve_placement(None, load)  # a census target is a path or hub id, never tiny:
    return {"device": device, "dtype": str(dtype).removeprefix("torch."), **library_versions()}


def options_record(load, detect) -> dict:
    """The options a row depends on, as plain data (the evaluation text by its hash; the device
    and dtype as resolved, so "auto" and the device it picks are one key)."""
    from swtui.core.snapshot.snapshot import text_identity

    d = asdict(detect)
    d["eval_text"] = text_identity(d.pop("eval_text"))["sha256"]
    env = environment(load)
    placed = {**asdict(load), "device": env["device"], "dtype": env["dtype"]}
    return {"load": placed, "detect": d, "environment": env}


def cache_key(file_hash: str, options: dict) -> str:
    blob = json.dumps({"file": file_hash, "swtui": __version__, "row": ROW_VERSION, "options": options},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_dir() -> Path:
    from swtui.core.model.gguf_cache import cache_root

    return cache_root() / "census"


def read_cached(key: str) -> dict | None:
    try:
        entry = json.loads((cache_dir() / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and "row" in entry else None


def write_cached(key: str, entry: dict) -> None:
    """Atomically: a census killed mid-write leaves no half entry."""
    write_text_atomic(cache_dir() / f"{key}.json", json.dumps(entry, default=float))


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- one model --------------------------------------------------------------------------------
def build_row(session, detection) -> dict:
    """One census row: the model, its massive channels and super weights with `scan`'s forms
    (`findings`)."""
    from swtui.core.detection.findings import candidate_json, judged_json

    info = session.info().to_json()
    cands = [candidate_json(c, session.adapter.coord_label) for c in detection.candidates]
    judged = judged_json(detection)
    sws = [c for c in cands if c["verdict"] in (SUPER, GROUP)]
    massive = [g for g in judged["channels"] if g["massive"]]
    return {
        "name": info["name"], "source": info["source"], "kind": info["kind"],
        "family": getattr(session.model.config, "model_type", None) or info["arch"], "arch": info["arch"],
        "params": info["params"], "layers": info["layers"], "device": info["device"], "dtype": info["dtype"],
        "source_quant": info["source_quant"],
        "ppl_base": next((c["ppl_base"] for c in cands if c.get("ppl_base")), None),
        **judged,  # impact_threshold, eval_tokens, interval_method, channel_rule, channels
        "massive_channels": [g["channel"] for g in massive],
        "candidates": cands,
        "super_weights": sws,
        "stop_reason": detection.stop_reason,
    }


def catalog_view(row: dict) -> dict:
    """What the catalog says about the row's model and whether the row agrees. Taken when a row is
    reported, cached or not: the catalog grows, a cached scan stays valid."""
    from swtui.core.detection.catalog import compare

    return compare(row["name"], [(c["layer"], c["row"], c["col"]) + ((c["expert"],) if c.get("expert") is not None
                                                                      else ()) for c in row["super_weights"]],
                   [g["channel"] for g in row["channels"] if g["massive"] and g["verdict"] in MATTERS])


def scan_one(target: Target, load, detect, progress=None) -> tuple[dict, dict]:
    """Load, detect and judge one model; returns (row, snapshot). The session dies with the call."""
    from swtui.core.detection.detect import adopt, detect as run_detect
    from swtui.core.model.loading import load_model
    from swtui.core.edits.session import Session
    from swtui.core.snapshot.snapshot import build_snapshot

    progress = progress or (lambda stage, frac: None)
    load = streamed_if_too_big(target, load, progress)
    session = Session(load_model(target.source, load, progress), down_proj=load.down_proj)
    detection = run_detect(session, detect, progress)
    adopt(session, detection)
    progress("writing the snapshot", None)
    return {**build_row(session, detection), "streamed": load.stream}, build_snapshot(session, detection=detection)


def streamed_if_too_big(target: Target, load, progress):
    """`load` with `stream=True` (and a notice) for a local safetensors folder whose weights, in the
    dtype they load in, exceed the memory available now: the census streams it rather than fail."""
    import dataclasses

    from swtui.core.model.loading import resolve_placement
    from swtui.core.model.stream.opening import available_memory, weights_bytes

    folder = Path(target.path)
    if load.stream or load.device_map is not None or not folder.is_dir() or not any(folder.glob("*.safetensors")):
        return load
    from swtui.core.errors import SwtuiError

    try:
        device, dtype = resolve_placement(target.source, load)
        need, have = weights_bytes(folder, dtype), available_memory(device)
    except SwtuiError:  # unreadable shards: the load says what is wrong, as for any model
        return load
    if need <= have:
        return load
    progress(f"streaming: its weights ({need / 2**30:.1f} GiB) exceed the memory available "
             f"({have / 2**30:.1f} GiB); each decoder layer is read as it runs", None)
    return dataclasses.replace(load, stream=True)


def free_memory() -> None:
    """Collect whatever reference cycles the last model left and hand CUDA's cached blocks back (the
    test: no earlier model is alive when the next one loads)."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def error_text(exc: BaseException) -> tuple[str, str]:
    """(kind, one line) of a model's failure."""
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        kind = "out of memory"
    elif isinstance(exc, SwtuiError):
        kind = exc.title.lower()
    else:
        kind = type(exc).__name__
    lines = str(exc).strip().splitlines()
    return kind, (lines[0][:300] if lines else type(exc).__name__)


@dataclass
class CensusOptions:
    load: "LoadOptions"
    detect: "DetectOptions"
    force: bool = False  # recompute rows even when cached


def run_census(targets: list[Target], opts: CensusOptions, progress: CensusProgress | None = None,
               on_row: Callable[[int, dict, dict | None], None] | None = None) -> list[dict]:
    """Scan `targets` one after another; returns one row per target (cached, measured or failed).
    `on_row(index, row, snapshot)` is called as each row is known (snapshot None on an error)."""
    progress = progress or (lambda i, stage, frac: None)
    options = options_record(opts.load, opts.detect)
    rows = []
    for i, target in enumerate(targets):
        started = time.perf_counter()
        row, snapshot = _one(i, target, opts, options, progress)
        if "seconds" not in row:
            row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        free_memory()
        progress(i, "done", 1.0)
        if on_row:
            on_row(i, row, snapshot)
    return rows


def _one(i: int, target: Target, opts: CensusOptions, options: dict, progress: CensusProgress):
    base = {"target": target.source, "kind": target.kind}

    def stage(name: str, fraction: float | None) -> None:  # the per-model view of the progress
        progress(i, name, fraction)

    try:
        stage("hashing", None)
        key = cache_key(content_hash(target), options)
        entry = None if opts.force else read_cached(key)
        if entry is not None:
            stage("from the cache", None)
            row = {**base, **entry["row"], "cached": True, "cache_key": key}
            return {**row, "catalog": catalog_view(row)}, entry.get("snapshot")
        started = time.perf_counter()
        row, snapshot = scan_one(target, opts.load, opts.detect, stage)
        row = {**base, **row, "environment": options["environment"],
               "seconds": round(time.perf_counter() - started, 1), "error": None}
        write_cached(key, {"row": row, "snapshot": snapshot})
        return {**row, "catalog": catalog_view(row), "cached": False, "cache_key": key}, snapshot
    except Exception as exc:  # noqa: BLE001 - any failure of one model is its row, never the run's end
        kind, message = error_text(exc)
        return {**base, "name": target.label, "error": {"kind": kind, "message": message},
                "cached": False}, None
