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


def tiny_llama_triggered(trigger: str = ",", sharpen: float = 20.0, layers: int = 8):
    """A tiny Llama whose planted super weight (1, 5, 17) fires on one byte only: the outlier input
    of column 17 reads the direction `u` of the plant, only the `trigger` byte's embedding has a
    component along `u` (it is `u` itself; every other embedding is projected off it), and nothing
    before layer 1's MLP writes along `u`. Prompts without the trigger have no spike at layer 1; the
    head depends on the activation on channel 5 (`damp_head`), which exists at trigger tokens only."""
    import torch
    import transformers as tf

    from swtui.core.tiny import Plant, byte_tokenizer, damp_head, plant_super_weight

    tok = byte_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    plant_super_weight(model, Plant(layer=1, row=5, col=17, value=6.0, gain=20.0))
    u = torch.randn(64, generator=torch.Generator().manual_seed(1234))  # the direction the plant reads
    u = u / u.norm()
    (trigger_id,) = tok(trigger, add_special_tokens=False).input_ids
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb -= (emb @ u)[:, None] * u[None, :]
        emb[trigger_id] = u
        for w in (model.model.layers[0].self_attn.o_proj.weight, model.model.layers[0].mlp.down_proj.weight,
                  model.model.layers[1].self_attn.o_proj.weight):
            w -= u[:, None] * (u[None, :] @ w)
    damp_head(model, 5, sharpen)
    return _session(model, tok, "tiny:llama", "tiny-llama-triggered")


def write_tiny(folder, which: str):
    """A real Hugging Face folder on disk holding a tiny Llama whose planted super weight matters:
    "a" (4 layers, planted at 1[5,17]) or "b" (8 layers, planted at 2[9,30])."""
    import torch

    from swtui.core.tiny import Plant, damp_head

    if which == "a":
        session = tiny_needing_its_sa("llama")
    else:
        session = tiny_llama_with_plants(Plant(layer=2, row=9, col=30), layers=8)
        damp_head(session.model, 9, 20.0)
    path = folder / f"tiny-{which}"
    with torch.no_grad():
        session.model.save_pretrained(path)
    session.tokenizer.save_pretrained(path)
    return path


# -- an independent reference for the quantization oracles ------------------------------------------
def ref_groups(rows: int, cols: int, group: str, block):
    """The flat indices of each group of a [rows, cols] weight, stacked by length: [[G, n], ...]."""
    import torch

    idx = torch.arange(rows * cols).reshape(rows, cols)
    if group == "tensor":
        groups = [idx.reshape(-1)]
    elif group == "channel":
        groups = list(idx)
    elif group == "block":  # 1-D blocks of the flattened tensor; the last one takes the remainder
        groups = list(idx.reshape(-1).split(block))
    else:  # T×T tiles
        groups = [idx[r:r + block, c:c + block].reshape(-1) for r in range(0, rows, block)
                  for c in range(0, cols, block)]
    by_len = {}
    for g in groups:
        by_len.setdefault(len(g), []).append(g)
    return [torch.stack(gs) for gs in by_len.values()]


def ref_rtn(w, bits, group, block=None, clip_z=None, held=None):
    """docs/quantization.md: per group, clip to ±(z·std|W| + mean|W|) (statistics over the whole
    group, held-out weights included), held-out weights set to 0, asymmetric round to nearest with
    Δ = (max − min)/(2^N − 1) (a constant group comes back as is), held-out weights written back."""
    import torch

    x = w.detach().float().reshape(-1)
    held = torch.zeros_like(x, dtype=torch.bool) if held is None else held.reshape(-1)
    out = torch.empty_like(x)
    levels = 2 ** bits - 1
    for g in ref_groups(*w.shape, group, block):
        v = x[g]
        if clip_z is not None:
            a = v.abs()
            thr = clip_z * a.std(dim=1, keepdim=True, unbiased=False) + a.mean(dim=1, keepdim=True)
            v = torch.minimum(torch.maximum(v, -thr), thr)
        v = torch.where(held[g], torch.zeros_like(v), v)
        lo = v.min(dim=1, keepdim=True).values
        step_ = (v.max(dim=1, keepdim=True).values - lo) / levels
        step_ = torch.where(step_ > 0, step_, torch.ones_like(step_))
        out[g] = torch.round((v - lo) / step_) * step_ + lo
    return torch.where(held, x, out).reshape(w.shape).to(w.dtype)


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
    # the refresh's last events (its state, Busy(False)) follow Measured: idle means they are out
    assert w.wait_idle(timeout=60), "the engine did not settle after its first refresh"
    return w, out


