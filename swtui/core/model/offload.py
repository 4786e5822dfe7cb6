"""Reading and writing parameters that accelerate offloaded (big models with `--device-map auto`),
and reading those a streamed model keeps in its files (`--stream`, `swtui.core.model.stream`).

An offloaded parameter sits on the meta device; accelerate's `AlignDevicesHook` on its module
loads the real tensor from `hook.weights_map` before each forward. That map is a `PrefixedDataset`
over an `OffloadedWeightsLoader`, whose in-memory `state_dict` takes priority over the weights on
disk. Edits to an offloaded weight are therefore written there, as overrides: the files on disk
are never touched, and dropping the override brings the pristine weight back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OffloadSlot:
    loader: object  # OffloadedWeightsLoader (or any mapping with a `state_dict`)
    key: str  # the full key inside the loader
    in_memory: bool  # True when the pristine tensor itself lives in loader.state_dict (CPU offload)

    def read(self):
        return self.loader[self.key]

    def write(self, tensor) -> None:
        self.loader.state_dict[self.key] = tensor

    def drop(self) -> None:
        """Back to the weight on disk (only for weights that came from disk)."""
        self.loader.state_dict.pop(self.key, None)


def offload_slot(model, name: str) -> OffloadSlot | None:
    """The offload slot of parameter `name`, or None when it is an ordinary (materialised) tensor."""
    module_name, _, attr = name.rpartition(".")
    try:
        module = model.get_submodule(module_name) if module_name else model
    except AttributeError:
        return None
    param = getattr(module, attr, None)
    if param is None or param.device.type != "meta":
        return None
    hook = getattr(module, "_hf_hook", None)
    wmap = getattr(hook, "weights_map", None)
    if wmap is None:  # a sequential hook: look for the aligning one
        for h in getattr(hook, "hooks", ()):
            wmap = getattr(h, "weights_map", None) or wmap
    if wmap is None:
        return None
    prefix = getattr(wmap, "prefix", "")
    loader = getattr(wmap, "dataset", wmap)
    if not hasattr(loader, "state_dict"):
        return None
    key = f"{prefix}{attr}"
    return OffloadSlot(loader, key, in_memory=key in loader.state_dict)


def layer_stream(model):
    """The model's `stream.LayerStream` (None: an ordinary, in-memory model)."""
    return getattr(model, "_swtui_stream", None) if model is not None else None


def real_tensor(model, name: str, tensor):
    """`tensor` itself, or the real values behind it when it is offloaded or streamed (a streamed
    decoder layer's parameter outside its layer's forward: read from the files, with the ledger's
    edits applied unless inside `pristine_weights`)."""
    if tensor.device.type != "meta":
        return tensor
    stream = layer_stream(model)
    if stream is not None and stream.streams(name):
        return stream.read_param(name)
    slot = offload_slot(model, name)
    return tensor if slot is None else slot.read()
