"""Models the tests build: tiny planted sessions on the CPU in float32, and tiny models saved as
real Hugging Face folders (also forced to offload)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_session(arch: str = "llama", plant=True, dtype: str = "float32"):
    """A fresh tiny model on the CPU in `dtype` (CPU numerics are what the tests assert)."""
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session

    source = f"tiny:{arch}" + ("" if plant else ":noplant")
    return Session(load_model(source, LoadOptions(device="cpu", dtype=dtype)))


def _cpu_options():
    from swtui.core.model.loading import LoadOptions

    return LoadOptions(device="cpu", dtype="float32")


#: tests assert CPU float32 numerics (and snapshots show "cpu · float32"), also on a GPU box
CPU = _cpu_options()


def tiny_llama_with_plants(*plants, layers: int = 8):
    """A tiny Llama of `layers` layers (CPU, float32) with the given super weights planted."""
    import torch
    import transformers as tf

    from swtui.core.model.loading import LoadedModel
    from swtui.core.edits.session import Session
    from swtui.core.model.tiny import byte_tokenizer, plant_super_weight

    tok = byte_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    for plant in plants:
        plant_super_weight(model, plant)
    return Session(LoadedModel(model, tok, source="tiny:llama", name=f"tiny-{len(plants)}sw", kind="tiny",
                               device="cpu", dtype="float32"))


def session_of(model, tok, source: str, name: str):
    """A session on a model the test built itself (CPU, float32)."""
    from swtui.core.model.loading import LoadedModel
    from swtui.core.edits.session import Session

    return Session(LoadedModel(model, tok, source=source, name=name, kind="tiny", device="cpu", dtype="float32"))


def tiny_needing_its_sa(arch: str, sharpen: float = 20.0):
    """The standard planted tiny model of `arch`, with a head that depends on the planted super
    activation (`damp_head`): pruning the planted weight must hurt perplexity."""
    from swtui.core.model.tiny import Plant, build_tiny, damp_head

    model, tok = build_tiny(arch, Plant())
    damp_head(model, Plant().row, sharpen)
    return session_of(model, tok, f"tiny:{arch}", f"tiny-{arch}-needs-sa")


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

    from swtui.core.model.tiny import Plant, byte_tokenizer, damp_head, plant_super_weight, set_norm_gain

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
    return session_of(model, tok, "tiny:gemma3", "tiny-gemma3-postnorm")


def tiny_llama_writers(*writers, layers: int = 8, sharpen: float = 20.0, shift: float = 0.0):
    """A tiny Llama whose residual channel 5 is written by `writers`: each is (layer, cols, value)
    and makes those input columns outliers at that layer writing value/len(cols) each into
    channel 5. The head depends on the activation on channel 5."""
    import torch
    import transformers as tf

    from swtui.core.model.tiny import Plant, byte_tokenizer, damp_head, plant_super_weight

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
    return session_of(model, tok, "tiny:llama", "tiny-llama-writers")


def tiny_llama_triggered(trigger: str = ",", sharpen: float = 20.0, layers: int = 8):
    """A tiny Llama whose planted super weight (1, 5, 17) fires on one byte only: the outlier input
    of column 17 reads the direction `u` of the plant, only the `trigger` byte's embedding has a
    component along `u` (it is `u` itself; every other embedding is projected off it), and nothing
    before layer 1's MLP writes along `u`. Prompts without the trigger have no spike at layer 1; the
    head depends on the activation on channel 5 (`damp_head`), which exists at trigger tokens only."""
    import torch
    import transformers as tf

    from swtui.core.model.tiny import Plant, byte_tokenizer, damp_head, plant_super_weight

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
    return session_of(model, tok, "tiny:llama", "tiny-llama-triggered")


def write_tiny(folder, which: str):
    """A real Hugging Face folder on disk holding a tiny Llama whose planted super weight matters:
    "a" (4 layers, planted at 1[5,17]) or "b" (8 layers, planted at 2[9,30])."""
    import torch

    from swtui.core.model.tiny import Plant, damp_head

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




def saved_tiny(folder, arch: str = "llama"):
    """The standard planted tiny model of `arch`, saved as a Hugging Face folder in `folder`."""
    from swtui.core.model.tiny import build_tiny

    model, tok = build_tiny(arch)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_bytes(arch: str = "llama") -> int:
    """The float32 size of the standard tiny model of `arch` (what an offload budget is cut from)."""
    from swtui.core.model.tiny import build_tiny

    return sum(p.numel() * 4 for p in build_tiny(arch)[0].parameters())


def offloaded_session(model_dir, arch: str, offload_folder):
    """The tiny model saved in `model_dir` loaded with accelerate's `device_map="auto"` under a CPU
    budget of a third of its float32 size, so that its later layers are offloaded to disk."""
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session

    opts = LoadOptions(device="cpu", dtype="float32", device_map="auto", max_memory={"cpu": tiny_bytes(arch) // 3},
                       offload_folder=str(offload_folder))
    return Session(load_model(str(model_dir), opts))
