"""Tiny random models with a planted super weight: fast, deterministic, no download.

Used by the unit tests, the snapshot tests and `swtui tiny:llama` for trying the UI quickly.
A super weight is planted by making one input channel `col` of the down projection an outlier
(its gate/up rows are scaled up) and setting W[row, col] large, so Y[:, row] ≈ X[:, col]·W[row, col]
becomes a super activation that the residual stream carries to later layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from swtui.core.errors import UserInputError

TINY_EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Plant:
    layer: int = 1
    row: int = 5
    col: int = 17
    value: float = 6.0
    gain: float = 20.0


def byte_tokenizer():
    """A byte-level tokenizer (one token per byte) built in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab[TINY_EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=TINY_EOS, pad_token=TINY_EOS,
                                   bos_token=TINY_EOS, model_max_length=1 << 20)


def _config(arch: str, vocab: int):
    import transformers as tf

    common = dict(vocab_size=vocab, bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    if arch == "llama":
        return tf.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, **common)
    if arch == "gemma3":
        return tf.Gemma3TextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                                   sliding_window=64, **common)
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=64, n_inner=128, n_layer=4, n_head=4, n_positions=256, **common)
    if arch == "phi3":
        return tf.Phi3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=256, **common)
    if arch == "qwen2":
        return tf.Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=256, **common)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                                max_position_embeddings=256, **common)
    if arch == "opt":
        return tf.OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=4, num_attention_heads=4,
                            word_embed_proj_dim=64, max_position_embeddings=256, **common)
    raise UserInputError(f"unknown tiny architecture {arch!r}; choose from {', '.join(TINY_ARCHS)}")


TINY_ARCHS = ("llama", "gemma3", "gpt2", "phi3", "qwen2", "gpt_neox", "opt")


def parse_tiny(source: str) -> tuple[str, Plant | None]:
    """`tiny:ARCH` or `tiny:ARCH:noplant` -> (arch, plant)."""
    parts = source.split(":")
    arch = parts[1] if len(parts) > 1 and parts[1] else "llama"
    return arch, None if "noplant" in parts[2:] else Plant()


def build_tiny(arch: str = "llama", plant: Plant | None = Plant(), seed: int = 0):
    """Return (model, tokenizer) for a tiny random `arch`, with `plant` applied (None: no plant)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = byte_tokenizer()
    config = _config(arch, len(tokenizer))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if plant is not None:
        plant_super_weight(model, plant)
    return model, tokenizer


def plant_super_weight(model, plant: Plant) -> None:
    """Make input channel `col` of layer `plant.layer`'s down projection an outlier and W[row, col] large."""
    import torch

    from swtui.core.adapters import ModelAdapter

    adapter = ModelAdapter(model)
    site = adapter.check_coords(plant.layer, plant.row, plant.col)
    layer = site.layer
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        mods = dict(layer.named_modules())
        hidden = site.out_features
        direction = torch.randn(hidden, generator=g)
        direction = direction / direction.norm()
        inter = site.in_features
        c = plant.col
        for name in ("mlp.gate_proj", "mlp.up_proj", "mlp.dense_h_to_4h", "fc1"):
            mod = mods.get(name)
            if mod is not None:
                mod.weight[c] = plant.gain * direction
                if getattr(mod, "bias", None) is not None:
                    mod.bias[c] = plant.gain
        fused = mods.get("mlp.gate_up_proj")
        if fused is not None:  # Phi-3: rows [0, H) gate, [H, 2H) up
            fused.weight[c] = plant.gain * direction
            fused.weight[inter + c] = plant.gain * direction
        c_fc = mods.get("mlp.c_fc")
        if c_fc is not None:  # GPT-2 Conv1D: weight is [in, out]
            c_fc.weight[:, c] = plant.gain * direction
            c_fc.bias[c] = plant.gain
        # the rest of column `col` stays small (as in real models), so only W[row, col] turns the
        # outlier input into a super activation
        if site.transposed:
            site.down.weight[c, :] *= 1e-4
        else:
            site.down.weight[:, c] *= 1e-4
        site.down.weight[site.index_of(plant.row, plant.col)] = plant.value


FINAL_NORMS = ("model.norm", "model.language_model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm",
               "model.decoder.final_layer_norm")


def set_norm_gain(norm, gains) -> None:
    """Give a norm the per-channel gains `gains` (a tensor), whatever its form (`w·x` or Gemma's
    `(1 + w)·x`): the offset between weight and gain is read by normalizing a vector of ones."""
    import torch

    with torch.no_grad():
        ones = torch.ones(1, norm.weight.shape[-1], dtype=norm.weight.dtype)
        offset = norm.forward(ones).reshape(-1) - norm.weight
        norm.weight.copy_(gains.to(norm.weight.dtype) - offset)


def damp_head(model, channel: int, sharpen: float, ignore: tuple[int, ...] = ()) -> None:
    """Make the model's quality depend on a massive activation on residual `channel`, as real
    models depend on their super activation.

    The final norm ignores `channel` and `ignore` (gain 0) and scales the others by `sharpen`. Where a
    massive activation sits on `channel`, it dominates the norm's RMS and damps the logits (calm,
    near-uniform predictions); without it the random logits are sharp and perplexity rises.
    """
    import torch

    modules = dict(model.named_modules())
    norm = next((modules[n] for n in FINAL_NORMS if n in modules), None)
    if norm is None:
        raise UserInputError(f"{type(model).__name__}: no final norm found among {', '.join(FINAL_NORMS)}")
    gains = torch.full((norm.weight.shape[-1],), float(sharpen))
    gains[[channel, *ignore]] = 0.0
    set_norm_gain(norm, gains)
