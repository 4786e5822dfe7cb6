"""Safetensors shards, read one tensor at a time with plain reads (no mmap, no whole-file load).

The format: 8 bytes (little-endian) giving the header's length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data;
offsets count from the end of the header. A tensor is read with `preadv` straight into a tensor's
own memory (pinned memory when it is bound for a GPU), so nothing but the tensors asked for ever
becomes resident, and the bytes read are counted exactly.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from swtui.core.errors import ModelLoadError

#: safetensors dtype names -> torch dtype attribute names
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
          "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
          "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
#: one read call at most (Linux caps a single read at just under 2 GiB)
CHUNK = 1 << 30


@dataclass(frozen=True)
class Entry:
    path: Path
    dtype: str  # safetensors name ("BF16")
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, DTYPES[self.dtype])


def read_header(path: Path) -> dict[str, Entry]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ValueError("shorter than a header")
            (n,) = struct.unpack("<Q", raw)
            if n > 100 << 20:
                raise ValueError(f"a header of {n} bytes")
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path.name}: not a readable safetensors file ({exc})") from None
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in DTYPES:
            raise ModelLoadError(f"{path.name}: tensor {name} has dtype {meta['dtype']}, which swtui cannot read")
        a, b = meta["data_offsets"]
        out[name] = Entry(path, meta["dtype"], tuple(meta["shape"]), base + a, base + b)
    return out


def weight_files(folder: Path) -> list[Path]:
    """The shards of a model folder: those its index names, else every *.safetensors file."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"{index}: unreadable ({exc})") from None
        return [folder / n for n in names]
    return sorted(folder.glob("*.safetensors"))


class ShardIndex:
    """Every tensor of a model folder's safetensors shards, by name, readable one at a time."""

    def __init__(self, folder: Path) -> None:
        files = weight_files(folder)
        if not files:
            raise ModelLoadError(f"{folder} has no safetensors weights (streaming reads only safetensors)")
        self.entries: dict[str, Entry] = {}
        for f in files:
            self.entries.update(read_header(f))
        self._fds: dict[Path, int] = {}
        self._lock = threading.Lock()
        self.bytes_read = 0  # every byte read so far (all threads)
        self.reads = 0  # tensors read so far

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def _fd(self, path: Path) -> int:
        with self._lock:
            if path not in self._fds:
                self._fds[path] = os.open(path, os.O_RDONLY)
            return self._fds[path]

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def _count(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_read += nbytes
            self.reads += 1

    def read(self, key: str, pin: bool = False):
        """Tensor `key` in its stored dtype, in fresh (pinned, with `pin`) CPU memory."""
        import torch

        e = self.entries[key]
        t = torch.empty(e.shape, dtype=e.torch_dtype, pin_memory=pin)
        if e.nbytes:
            view = memoryview(t.reshape(-1).view(torch.uint8).numpy())
            fd, done = self._fd(e.path), 0
            while done < e.nbytes:
                got = os.preadv(fd, [view[done:done + CHUNK]], e.start + done)
                if got <= 0:
                    raise ModelLoadError(f"{e.path.name}: tensor {key} is cut short (file truncated?)")
                done += got
        self._count(e.nbytes)
        return t

    def read_element(self, key: str, flat: int):
        """One element of tensor `key` (flat index into its row-major storage), as a 0-d tensor."""
        import torch

        e = self.entries[key]
        size = torch.empty((), dtype=e.torch_dtype).element_size()
        raw = os.pread(self._fd(e.path), size, e.start + flat * size)
        if len(raw) != size:
            raise ModelLoadError(f"{e.path.name}: tensor {key} is cut short (file truncated?)")
        self._count(size)
        return torch.frombuffer(bytearray(raw), dtype=e.torch_dtype).reshape(())


def flat_index(idx: tuple, shape) -> int:
    """The row-major flat position of `idx` in a tensor of `shape`."""
    flat, stride = 0, 1
    for i, n in zip(reversed(tuple(idx)), reversed(tuple(shape))):
        flat += int(i) * stride
        stride *= n
    return flat
