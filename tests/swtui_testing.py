"""Helpers shared by the tests (imported as a module, not through conftest)."""

import collections
import os
import threading
import time

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


def _session(model, tok, source: str, name: str):
    from swtui.core.loading import LoadedModel
    from swtui.core.session import Session

    return Session(LoadedModel(model, tok, source=source, name=name, kind="tiny", device="cpu", dtype="float32"))


def tiny_needing_its_sa(arch: str, sharpen: float = 20.0):
    """The standard planted tiny model of `arch`, with a head that depends on the planted super
    activation (`damp_head`): pruning the planted weight must hurt perplexity."""
    from swtui.core.tiny import Plant, build_tiny, damp_head

    model, tok = build_tiny(arch, Plant())
    damp_head(model, Plant().row, sharpen)
    return _session(model, tok, f"tiny:{arch}", f"tiny-{arch}-needs-sa")


#: the realistic post-FFN-norm model: its plant and the channel the norms favour in every layer
POSTNORM_PLANT_ARGS = dict(layer=2, row=5, col=17, value=0.03, gain=1.6)
HEAVY_CHANNEL = 40


def tiny_postnorm_gemma(layers: int = 8):
    """A Gemma-3 of `layers` layers shaped like the real post-FFN-norm case (issue: detection
    across architectures): the planted super weight's raw down_proj output is a modest outlier
    (~10× the median over layers) behind a ~30× input spike; the post-FFN norm of its layer has a
    large gain on its row (the write into the residual is massive) and every layer's post-FFN norm
    favours another channel (`HEAVY_CHANNEL`, gain 15), so the largest write is there in most
    layers. The head depends on the super activation, so pruning the weight hurts."""
    import torch
    import transformers as tf

    from swtui.core.tiny import Plant, byte_tokenizer, damp_head, plant_super_weight, set_norm_gain

    tok = byte_tokenizer()
    v = len(tok)
    cfg = tf.Gemma3TextConfig(vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                              sliding_window=64, bos_token_id=v - 1, eos_token_id=v - 1, pad_token_id=v - 1)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    plant = Plant(**POSTNORM_PLANT_ARGS)
    plant_super_weight(model, plant)
    with torch.no_grad():  # the super weight is the only sizeable weight of its row
        w = model.model.layers[plant.layer].mlp.down_proj.weight
        w[plant.row] *= 1e-3
        w[plant.row, plant.col] = plant.value
    for i, layer in enumerate(model.model.layers):
        gains = torch.ones(64)
        gains[HEAVY_CHANNEL] = 15.0
        if i == plant.layer:
            gains[plant.row] = 150.0
        set_norm_gain(layer.post_feedforward_layernorm, gains)
    damp_head(model, plant.row, 10.0, ignore=(HEAVY_CHANNEL,))
    return _session(model, tok, "tiny:gemma3", "tiny-gemma3-postnorm")


def tiny_llama_writers(*writers, layers: int = 8, sharpen: float = 20.0, shift: float = 0.0):
    """A tiny Llama whose residual channel 5 is written by `writers`: each is (layer, cols, value)
    and makes those input columns outliers at that layer writing value/len(cols) each into
    channel 5. The head depends on the activation on channel 5."""
    import torch
    import transformers as tf

    from swtui.core.tiny import Plant, byte_tokenizer, damp_head, plant_super_weight

    tok = byte_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    if shift:  # every token leans along the plants' input direction: the outlier inputs fire on every token
        g = torch.Generator().manual_seed(1234)  # the direction `plant_super_weight` uses
        direction = torch.randn(64, generator=g)
        with torch.no_grad():
            model.model.embed_tokens.weight += shift * direction / direction.norm()
    for layer, cols, value in writers:
        for col in cols:
            plant_super_weight(model, Plant(layer=layer, row=5, col=col, value=value / len(cols), gain=20.0))
        with torch.no_grad():  # one shared direction: the columns spike together
            mlp = model.model.layers[layer].mlp
            for name in ("gate_proj", "up_proj"):
                getattr(mlp, name).weight[list(cols)] = getattr(mlp, name).weight[cols[0]].clone()
    damp_head(model, 5, sharpen)
    return _session(model, tok, "tiny:llama", "tiny-llama-writers")


# -- the engine, driven from a test ---------------------------------------------------------------
class Collector:
    """An engine's `emit`: keeps every event; `wait_for` blocks until one matches."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, pred, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(pred(e) for e in self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = collections.Counter(type(e).__name__ for e in self.events)
                    raise AssertionError(f"no such event; got {dict(seen)}")
                self.cond.wait(left)
        return [e for e in self.events if pred(e)][-1]


def idle_worker(session, **kw):
    """A started engine on `session`, past its load-time refresh; returns (engine, collector)."""
    from swtui.core import protocol as ev
    from swtui.core.engine import Engine

    out = Collector()
    w = Engine(out, None, session=session, detect_on_load=False, max_new_tokens=kw.pop("tokens", 8), **kw)
    w.start()
    out.wait_for(lambda e: isinstance(e, ev.Measured))
    return w, out


