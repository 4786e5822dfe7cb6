"""Opening a model streamed (`--stream`): the skeleton on the meta device, everything outside the
decoder layers read once and held, the layers handed to a `LayerStream`; and how much memory a
model needs against how much there is (the census streams what does not fit)."""

from __future__ import annotations

from swtui.core.errors import ModelLoadError
from swtui.core.model.stream.keys import plan_recipes
from swtui.core.model.stream.layers import LayerStream, StreamStats, _place, _slots
from swtui.core.model.stream.shards import ShardIndex


def find_layer_list(model) -> str:
    from swtui.core.model.adapters import LAYER_LISTS
    from swtui.core.errors import UnsupportedArchitecture

    modules = dict(model.named_modules())
    for name in LAYER_LISTS:
        layers = modules.get(name)
        if layers is not None and hasattr(layers, "__len__") and len(layers) > 0:
            return name
    raise UnsupportedArchitecture(f"{type(model).__name__}: no decoder layer list ({', '.join(LAYER_LISTS)}) to stream")


def open_streamed(folder, config, device: str, dtype, trust_remote_code: bool = False, progress=None):
    """(model, LayerStream) for the safetensors model in `folder`: the skeleton on the meta device,
    everything outside the decoder layers read and held, the layers streamed."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    progress = progress or (lambda stage, frac: None)
    index = ShardIndex(folder)
    floats = {e.dtype for e in index.entries.values()}
    if not floats <= {"F64", "F32", "F16", "BF16"}:
        raise ModelLoadError(f"{folder}: tensors of type {', '.join(sorted(floats - {'F64', 'F32', 'F16', 'BF16'}))} "
                             "(a quantized checkpoint): streaming reads bf16, fp16 and fp32 weights only")
    progress("building the model on the meta device", None)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    model.tie_weights()
    model.eval()
    list_name = find_layer_list(model)
    recipes = plan_recipes(model, index.entries)
    named = dict(model.named_parameters(remove_duplicate=False))
    slots = _slots(model)
    buffers = dict(model.named_buffers())
    # held: everything outside the decoder layers, and the buffers a checkpoint stores (small)
    held = [r for t, r in recipes.items() if not t.startswith(f"{list_name}.") or t in buffers]
    recipes = {t: r for t, r in recipes.items() if t.startswith(f"{list_name}.") and t not in buffers}
    progress("reading the embeddings, final norm and head", None)
    done: set = set()
    for recipe in held:
        for name, t in recipe.make(lambda k: index.read(k), model).items():
            target = named.get(name)
            if target is None and name in buffers:
                module_name, _, attr = name.rpartition(".")
                module = model.get_submodule(module_name)
                module._buffers[attr] = t.to(device=device, dtype=buffers[name].dtype)
                continue
            if target is None:
                continue
            _place(slots[name], torch.nn.Parameter(t.to(device=device, dtype=target.dtype), requires_grad=False))
            done.add(id(target))
    outside = [n for n, p in named.items() if not n.startswith(f"{list_name}.")]
    missing = [n for n in outside if id(named[n]) not in done]
    if missing:
        raise ModelLoadError(f"{folder}: the checkpoint has no tensor for {missing[0]}")
    for name, buf in buffers.items():  # buffers the checkpoint does not hold: computed at build
        if buf.device.type == "meta":
            raise ModelLoadError(f"{folder}: buffer {name} is neither computed nor stored")
        if buf.device != torch.device(device):
            module_name, _, attr = name.rpartition(".")
            model.get_submodule(module_name)._buffers[attr] = buf.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    stream = LayerStream(model, index, recipes, list_name, device, dtype)
    model._swtui_stream = stream  # what `offload.layer_stream` finds
    progress("checking the first layer against the checkpoint", None)
    stream._read(0)  # a wrong key mapping fails here, not mid-scan
    stream.stats = StreamStats()
    stream.peak_live = 0
    return model, stream


def available_memory(device: str = "cpu") -> int:
    """Bytes a model may take on `device` now: MemAvailable (CPU), the free GPU memory (CUDA)."""
    import torch

    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def weights_bytes(folder, dtype) -> int:
    """Bytes the model of `folder` takes in memory in `dtype` (its safetensors, as that dtype)."""
    import torch

    index = ShardIndex(folder)
    size = torch.empty((), dtype=dtype).element_size()
    total = 0
    for e in index.entries.values():
        n = 1
        for d in e.shape:
            n *= d
        total += n * (size if e.dtype in ("F64", "F32", "F16", "BF16") else e.torch_dtype.itemsize)
    index.close()
    return total
