"""Load a causal LM from the demo wheel, a local directory, the local HF cache, or a GGUF file.

Nothing here downloads: hub ids resolve from the local cache only (`local_files_only=True`).
GGUF files are dequantized once and cached as safetensors (see `gguf_cache`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from swtui.core.errors import ModelLoadError, UserInputError
from swtui.core.model.source_quant import FLOAT, SourceQuant

#: progress(stage, fraction or None when unknown)
ProgressFn = Callable[[str, "float | None"], None]

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _no_progress(stage: str, fraction: float | None) -> None:
    pass


@dataclass
class LoadOptions:
    device: str = "auto"
    dtype: str = "auto"
    device_map: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    down_proj: str | None = None
    max_memory: dict | None = None  # with device_map "auto": {"cpu": "2GiB", 0: "70GiB"}
    offload_folder: str | None = None  # with device_map "auto": where accelerate may offload
    stream: bool = False  # read each decoder layer from the files as it runs (`swtui.core.model.stream`)


def parse_max_memory(text: str | None) -> dict | None:
    """'cpu=2GiB,0=70GiB' -> {'cpu': '2GiB', 0: '70GiB'} (accelerate's max_memory)."""
    if not text:
        return None
    out: dict = {}
    for part in text.split(","):
        dev, sep, size = part.partition("=")
        dev, size = dev.strip(), size.strip()
        if not sep or not dev or not size:
            raise UserInputError(f"--max-memory takes DEVICE=SIZE[,…] (e.g. cpu=2GiB,0=70GiB), not {text!r}")
        if dev not in ("cpu", "disk") and not dev.isdigit():
            raise UserInputError(f"--max-memory: device must be cpu or a GPU index, not {dev!r}")
        out[int(dev) if dev.isdigit() else dev] = int(size) if size.isdigit() else size
    return out


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str
    name: str
    kind: str  # "gguf" | "dir" | "hub" | "tiny"
    device: str
    dtype: str
    revision: str | None = None
    file_hash: str | None = None
    #: how the source stored its weights (GGUF tensor types, a quantized checkpoint's config)
    source_quant: SourceQuant = FLOAT
    #: the decoder layers are read from the files at each pass (`swtui.core.model.stream.layers.LayerStream`)
    stream: Any = None

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def streamed(self) -> bool:
        return self.stream is not None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserInputError(f"--device {device}: CUDA is not available on this machine")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserInputError(f"--device {device}: no such CUDA device")
        return device
    raise UserInputError(f"--device must be auto, cpu or cuda[:N], not {device!r}")


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise UserInputError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def resolve_placement(source: str | None, opts: LoadOptions):
    """(device, torch dtype) that `load_model(source, opts)` puts the model on: "auto" resolved.
    tiny:ARCH models are a few hundred kB: `auto` keeps them on the CPU in float32 everywhere, so
    their figures are the same on a laptop and a GPU box."""
    tiny = source is not None and source.startswith("tiny:")
    device = resolve_device("cpu" if tiny and opts.device == "auto" else opts.device)
    return device, resolve_dtype(opts.dtype, device)


def load_model(source: str | None, opts: LoadOptions | None = None,
               progress: ProgressFn | None = None) -> LoadedModel:
    """Load `source` (None = the demo model). Raises SwtuiError subclasses on bad input."""
    opts = opts or LoadOptions()
    progress = progress or _no_progress
    if opts.device_map not in (None, "auto"):
        raise UserInputError("--device-map only accepts 'auto'")
    if (opts.max_memory or opts.offload_folder) and opts.device_map != "auto":
        raise UserInputError("--max-memory and --offload-folder need --device-map auto")
    if opts.stream and opts.device_map is not None:
        raise UserInputError("--stream and --device-map auto are two ways to run a model larger than memory: "
                             "choose one (--stream reads each layer once per pass, for every arm at once)")
    if opts.stream and source is not None and source.startswith("tiny:"):
        raise UserInputError("tiny models are built in memory, there are no files to stream: save one "
                             "(save_pretrained) and stream its folder")
    tiny = source is not None and source.startswith("tiny:")
    device, dtype = resolve_placement(source, opts)

    if source is None:
        from swtui.core.model.demo import DEMO_NAME, demo_model_path

        loaded = _load_gguf(demo_model_path(), opts, device, dtype, progress)
        loaded.name = DEMO_NAME
        loaded.source = "demo"
        return loaded
    if tiny:
        return _load_tiny(source, device, dtype)
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() == ".gguf":
                return _load_gguf(path, opts, device, dtype, progress)
            raise ModelLoadError(f"{path} is a file but not .gguf; pass a model directory or a .gguf file")
        return _load_dir(path, opts, device, dtype, progress, kind="dir", name=path.name)
    if source.startswith((".", "/", "~")) or os.sep in source and source.count("/") > 1:
        raise ModelLoadError(f"no such file or directory: {source}")
    return _load_hub(source, opts, device, dtype, progress)


def _load_tiny(source: str, device: str, dtype) -> LoadedModel:
    from swtui.core.model.tiny import build_tiny, parse_tiny

    arch, plant = parse_tiny(source)
    model, tokenizer = build_tiny(arch, plant)
    model.to(device=device, dtype=dtype)
    return LoadedModel(model, tokenizer, source=source, name=f"tiny-{arch}", kind="tiny", device=device,
                       dtype=str(model.dtype).removeprefix("torch."))


def _check_weights_files(path: Path, allow_pickle: bool) -> None:
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json: not a Hugging Face model directory")
    if any(path.glob("*.safetensors")):
        return
    if any(path.glob("*.bin")) or any(path.glob("*.pt")):
        if not allow_pickle:
            raise ModelLoadError(
                f"{path} holds only pickle checkpoints (.bin); pickles can run code when loaded. "
                "Convert to safetensors, or pass --allow-pickle to load them with weights_only=True"
            )
        return
    raise ModelLoadError(f"{path} has no weights (*.safetensors)")


def _from_pretrained(path: Path, opts: LoadOptions, device: str, dtype, gguf_file: str | None = None,
                     progress: ProgressFn = _no_progress):
    progress("importing transformers", None)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": opts.trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_safetensors"] = not opts.allow_pickle or any(path.glob("*.safetensors"))
    try:
        # sequential on purpose: loading the tokenizer in a second thread raced transformers'
        # lazy imports ("cannot import name GGUF_CONFIG_ARCHS") on a cold GGUF open
        progress("loading the tokenizer", None)
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
        progress("loading weights", None)
        model_kwargs = dict(kwargs, dtype=dtype)
        if opts.device_map == "auto":
            model_kwargs["device_map"] = "auto"
            if opts.max_memory:
                model_kwargs["max_memory"] = opts.max_memory
            if opts.offload_folder:
                model_kwargs["offload_folder"] = opts.offload_folder
        model = AutoModelForCausalLM.from_pretrained(str(path), **model_kwargs)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types; all mean "cannot load"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{gguf_file or path}: {first[:300]}") from exc
    if opts.device_map != "auto" and device != "cpu":
        progress(f"moving the weights to {device}", None)
        model.to(device)
    model.eval()
    return model, tokenizer


def _load_dir(path: Path, opts: LoadOptions, device: str, dtype, progress: ProgressFn,
              kind: str, name: str) -> LoadedModel:
    _check_weights_files(path, opts.allow_pickle)
    if opts.stream:
        return _load_streamed(path, opts, device, dtype, progress, kind, name)
    model, tokenizer = _from_pretrained(path, opts, device, dtype, progress=progress)
    progress("loaded", 1.0)
    from swtui.core.model.source_quant import from_dir

    return LoadedModel(model, tokenizer, source=str(path), name=name, kind=kind,
                       device=device, dtype=str(dtype).removeprefix("torch."), revision=opts.revision,
                       source_quant=from_dir(path))


def _load_streamed(path: Path, opts: LoadOptions, device: str, dtype, progress: ProgressFn,
                   kind: str, name: str, source: str | None = None) -> LoadedModel:
    """The model of folder `path` with its decoder layers streamed from its safetensors shards."""
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"{path}: --stream reads safetensors shards; this folder has only pickles")
    progress("importing transformers", None)
    from transformers import AutoConfig, AutoTokenizer

    from swtui.core.model.source_quant import from_dir
    from swtui.core.model.stream.opening import open_streamed

    try:
        progress("loading the tokenizer", None)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=opts.trust_remote_code)
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=opts.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types; all mean "cannot load"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: {first[:300]}") from exc
    if getattr(config, "quantization_config", None):
        raise UserInputError(f"{path} is a quantized checkpoint: --stream reads bf16, fp16 and fp32 weights only")
    model, stream = open_streamed(path, config, device, dtype, opts.trust_remote_code, progress)
    progress("loaded (streamed)", 1.0)
    return LoadedModel(model, tokenizer, source=source or str(path), name=name, kind=kind, device=device,
                       dtype=str(dtype).removeprefix("torch."), revision=opts.revision, source_quant=from_dir(path),
                       stream=stream)


def _load_hub(repo_id: str, opts: LoadOptions, device: str, dtype, progress: ProgressFn) -> LoadedModel:
    try:
        from huggingface_hub import snapshot_download

        progress("resolving from the local Hugging Face cache", None)
        local = snapshot_download(repo_id, revision=opts.revision, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - hub raises many types; all mean "not cached"
        raise ModelLoadError(
            f"{repo_id!r} is not a local path and is not in the local Hugging Face cache "
            "(swtui never downloads; fetch it with `huggingface-cli download` first)"
        ) from exc
    return _load_dir(Path(local), opts, device, dtype, progress, kind="hub", name=repo_id)


def _load_gguf(path: Path, opts: LoadOptions, device: str, dtype, progress: ProgressFn) -> LoadedModel:
    from swtui.core.model import gguf_cache

    file_hash = gguf_cache.file_sha256(path, progress)
    cached = gguf_cache.cached_dir(file_hash)
    if cached is None:
        if opts.stream:
            gguf_cache.check_dequantizable(path)  # the first open dequantizes in memory, once
        progress("dequantizing GGUF (first open only; cached afterwards)", None)
        gguf_cache.check_gguf_header(path)
        import torch

        # transformers dequantizes GGUF tensors on load; ask for float32 explicitly and check it
        model, tokenizer = _from_pretrained(path.parent, LoadOptions(trust_remote_code=False), "cpu",
                                            torch.float32, gguf_file=path.name)
        packed = [n for n, p in model.named_parameters() if not p.dtype.is_floating_point]
        if packed:
            raise ModelLoadError(f"{path.name}: {len(packed)} tensors were not dequantized (e.g. {packed[0]})")
        progress("writing the safetensors cache", None)
        cached = gguf_cache.store(file_hash, model, tokenizer, path)
        del model, tokenizer
    if opts.stream:
        loaded = _load_streamed(cached, opts, device, dtype, progress, "gguf", path.stem, source=str(path))
        loaded.file_hash, loaded.source_quant = file_hash, gguf_cache.source_quant(cached, path)
        return loaded
    model, tokenizer = _from_pretrained(cached, opts, device, dtype, progress=progress)
    progress("loaded", 1.0)
    return LoadedModel(model, tokenizer, source=str(path), name=path.stem, kind="gguf", device=device,
                       dtype=str(dtype).removeprefix("torch."), file_hash=file_hash,
                       source_quant=gguf_cache.source_quant(cached, path))
