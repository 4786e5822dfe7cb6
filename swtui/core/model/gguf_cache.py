"""Cache of dequantized GGUF models as plain safetensors directories.

Dequantizing the demo model takes ~20 s on 2 cores; loading the cached safetensors takes ~0.3 s.
Entries are keyed by the GGUF file's SHA-256. The hash itself is memoised in `index.json` by
(path, size, mtime), so a warm open does not re-read the file. transformers refuses
`save_pretrained` on a GGUF-loaded model, so config, tokenizer and weights are written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from swtui.core.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"


def cache_root() -> Path:
    override = os.environ.get("SWTUI_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("swtui"))


def _index_path() -> Path:
    return cache_root() / "index.json"


def _read_index() -> dict:
    try:
        return json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def file_sha256(path: Path, progress=None) -> str:
    """SHA-256 of a file, memoised by (resolved path, size, mtime_ns)."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index = _read_index()
    if key in index:
        return index[key]
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress("hashing the GGUF file", done / max(st.st_size, 1))
    digest = h.hexdigest()
    index[key] = digest
    try:
        _write_json_atomic(_index_path(), index)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return digest


def check_gguf_header(path: Path) -> None:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (bad magic {magic!r})")


def cached_dir(file_hash: str) -> Path | None:
    entry = cache_root() / "gguf" / file_hash[:32]
    if (entry / "complete").is_file():
        return entry
    return None


def store(file_hash: str, model, tokenizer, source: Path) -> Path:
    """Write config, tokenizer and weights into a temp dir, then rename it into place."""
    import safetensors.torch

    final = cache_root() / "gguf" / file_hash[:32]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
    try:
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # save_model de-duplicates tied tensors (embed_tokens / lm_head).
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
        (tmp / "complete").write_text(json.dumps({"sha256": file_hash, "source": str(source)}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def source_quant(entry: Path, source: Path):
    """The GGUF's own tensor types, read from its header once and kept beside the cache entry
    (reading the header costs ~2 s on the demo; the entry's copy is read in microseconds)."""
    from swtui.core.model import source_quant as sq

    memo = entry / "source_quant.json"
    try:
        return sq.from_json(json.loads(memo.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = sq.from_gguf(source)
    try:
        _write_json_atomic(memo, sq.to_json(found))
    except OSError:
        pass  # a read-only cache only costs a re-read next time
    return found


def dequantized_bytes(path: Path) -> int:
    """Bytes of the GGUF's tensors dequantized to float32 (header only)."""
    import gguf

    return 4 * sum(int(t.n_elements) for t in gguf.GGUFReader(str(path)).tensors)


def check_dequantizable(path: Path) -> None:
    """Refuse (before trying) to dequantize a GGUF whose float32 weights do not fit in memory: the
    first open dequantizes it whole (transformers' GGUF loader), and only the cache it writes can
    then be streamed."""
    from swtui.core.model.stream.opening import available_memory

    need, have = dequantized_bytes(path), available_memory("cpu")
    if need > have:
        raise ModelLoadError(
            f"{path.name}: its first open dequantizes it in memory ({need / 2**30:.1f} GiB as float32, "
            f"{have / 2**30:.1f} GiB available) before --stream can read the cache; dequantize it once on a "
            "machine with more memory (the cache is keyed by the file's hash: copy it over), or convert it to "
            "safetensors")
