"""Helpers shared by the tests (imported as a module, not through conftest)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_session(arch: str = "llama", plant=True, dtype: str = "float32"):
    """A fresh tiny model on the CPU in `dtype` (CPU numerics are what the tests assert)."""
    from swtui.core.loading import LoadOptions, load_model
    from swtui.core.session import Session

    source = f"tiny:{arch}" + ("" if plant else ":noplant")
    return Session(load_model(source, LoadOptions(device="cpu", dtype=dtype)))


def _cpu_options():
    from swtui.core.loading import LoadOptions

    return LoadOptions(device="cpu", dtype="float32")


#: tests assert CPU float32 numerics (and snapshots show "cpu · float32"), also on a GPU box
CPU = _cpu_options()
