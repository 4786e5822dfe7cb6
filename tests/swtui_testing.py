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


def tiny_llama_with_plants(*plants, layers: int = 8):
    """A tiny Llama of `layers` layers (CPU, float32) with the given super weights planted."""
    import torch
    import transformers as tf

    from swtui.core.loading import LoadedModel
    from swtui.core.session import Session
    from swtui.core.tiny import byte_tokenizer, plant_super_weight

    tok = byte_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    for plant in plants:
        plant_super_weight(model, plant)
    return Session(LoadedModel(model, tok, source="tiny:llama", name=f"tiny-{len(plants)}sw", kind="tiny",
                               device="cpu", dtype="float32"))
