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
    expert: int = 2  # fused experts (MoE archs): the expert the weight is planted in
    direction_seed: int = 1234  # the outlier direction's seed (two plants, two directions)


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


def _config(arch: str, vocab: int, layers: int = 4, experts: int = 4):
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
    if arch in MOE_ARCHS:
        return _moe_config(arch, common, layers, experts)
    raise UserInputError(f"unknown tiny architecture {arch!r}; choose from {', '.join(TINY_ARCHS + MOE_ARCHS)}")


#: fused-expert families (transformers 5.x): 4 layers of 4 experts by default, top-2, experts of width 32
MOE_ARCHS = ("mixtral", "qwen3_moe", "qwen2_moe", "olmoe", "deepseek_v3", "gpt_oss")
#: dense families (the families' tests run over these; the MoE ones have tests of their own)
TINY_ARCHS = ("llama", "gemma3", "gpt2", "phi3", "qwen2", "gpt_neox", "opt")


def _moe_config(arch: str, common: dict, layers: int, experts: int):
    import transformers as tf

    base = dict(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=256, num_experts_per_tok=2, tie_word_embeddings=False, **common)
    if arch == "mixtral":
        return tf.MixtralConfig(intermediate_size=32, num_local_experts=experts, **base)
    if arch == "qwen3_moe":
        return tf.Qwen3MoeConfig(intermediate_size=128, moe_intermediate_size=32, num_experts=experts, head_dim=16,
                                 decoder_sparse_step=1, norm_topk_prob=True, **base)
    if arch == "qwen2_moe":  # with a shared expert beside the routed ones
        return tf.Qwen2MoeConfig(intermediate_size=128, moe_intermediate_size=32, num_experts=experts,
                                 shared_expert_intermediate_size=32, decoder_sparse_step=1, **base)
    if arch == "olmoe":
        return tf.OlmoeConfig(intermediate_size=32, num_experts=experts, **base)
    if arch == "deepseek_v3":  # layer 0 dense, then routed experts + a shared expert, latent attention
        return tf.DeepseekV3Config(intermediate_size=128, moe_intermediate_size=32, n_routed_experts=experts,
                                   n_shared_experts=1, first_k_dense_replace=1, n_group=1, topk_group=1,
                                   kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8,
                                   v_head_dim=16, routed_scaling_factor=1.0, **base)
    return tf.GptOssConfig(intermediate_size=32, num_local_experts=experts, head_dim=16, sliding_window=64,
                           layer_types=[("sliding_attention", "full_attention")[i % 2] for i in range(layers)], **base)


def parse_tiny(source: str) -> tuple[str, Plant | None]:
    """`tiny:ARCH` or `tiny:ARCH:noplant` -> (arch, plant)."""
    parts = source.split(":")
    arch = parts[1] if len(parts) > 1 and parts[1] else "llama"
    return arch, None if "noplant" in parts[2:] else Plant()


def build_tiny(arch: str = "llama", plant: Plant | None = Plant(), seed: int = 0, layers: int = 4,
               experts: int = 4):
    """Return (model, tokenizer) for a tiny random `arch`, with `plant` applied (None: no plant);
    `layers` and `experts` size the MoE families (the dense ones keep 4 layers)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = byte_tokenizer()
    config = _config(arch, len(tokenizer), layers, experts)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if plant is not None and arch in MOE_ARCHS:
        plant_expert_super_weight(model, plant)
        # the head depends on the super activation, as real models do (pruning it must hurt)
        damp_head(model, plant.row, 20.0)
    elif plant is not None:
        plant_super_weight(model, plant)
    return model, tokenizer


def plant_expert_super_weight(model, plant: Plant) -> None:
    """Plant a super weight in expert `plant.expert` of fused layer `plant.layer`: the router sends
    the tokens aligned with a direction d to that expert (its router row is gain·d), whose input
    channel `col` is an outlier on exactly those tokens (its gate/up rows are gain·d), and its
    W[row, col] is large. The tokens that spike are the tokens routed to it, whatever the prompt."""
    import torch

    from swtui.core.model.adapters import ModelAdapter

    adapter = ModelAdapter(model)
    site = adapter.check_coords(plant.layer, plant.row, plant.col, plant.expert)
    experts, e, c = site.down, plant.expert, plant.col
    block = site.block
    router = getattr(block, "gate", None) if hasattr(getattr(block, "gate", None), "weight") else block.router
    g = torch.Generator().manual_seed(plant.direction_seed)
    with torch.no_grad():
        d = torch.randn(site.out_features, generator=g)
        d = d / d.norm()
        router.weight[e] = plant.gain * d.to(router.weight.dtype)
        if getattr(router, "bias", None) is not None:
            router.bias[e] = 0.0
        inter = site.in_features
        if site.transposed:  # GPT-OSS: gate_up [E, D, 2I] interleaved (gate 0::2, up 1::2), down [E, I, D]
            experts.gate_up_proj[e][:, 2 * c] = plant.gain * d
            experts.gate_up_proj[e][:, 2 * c + 1] = plant.gain * d
            experts.down_proj[e][c, :] *= 1e-4
        else:  # gate_up [E, 2I, D]: gate rows [0, I), up rows [I, 2I); down [E, D, I]
            experts.gate_up_proj[e][c] = plant.gain * d
            experts.gate_up_proj[e][inter + c] = plant.gain * d
            experts.down_proj[e][:, c] *= 1e-4
        experts.down_proj[site.index_of(plant.row, plant.col, e)] = plant.value


def plant_shared_super_weight(model, plant: Plant) -> None:
    """Plant a super weight in the shared expert of fused layer `plant.layer` (DeepSeek-V3,
    Qwen2-MoE): its input channel `col` is an outlier on the tokens aligned with a direction d (its
    gate/up rows are gain·d), and its W[row, col] is large. `plant.expert` is not used."""
    import torch

    from swtui.core.model.adapters import ModelAdapter
    from swtui.core.model.moe import shared_down_name

    site = ModelAdapter(model).site(plant.layer)
    name = shared_down_name(site)
    if name is None:
        raise UserInputError(f"layer {plant.layer} has no shared expert")
    mlp = model.get_submodule(name.rpartition(".")[0])
    g = torch.Generator().manual_seed(plant.direction_seed)
    with torch.no_grad():
        d = torch.randn(site.out_features, generator=g)
        d = d / d.norm()
        mlp.gate_proj.weight[plant.col] = plant.gain * d
        mlp.up_proj.weight[plant.col] = plant.gain * d
        mlp.down_proj.weight[:, plant.col] *= 1e-4
        mlp.down_proj.weight[plant.row, plant.col] = plant.value


def plant_super_weight(model, plant: Plant) -> None:
    """Make input channel `col` of layer `plant.layer`'s down projection an outlier and W[row, col] large."""
    import torch

    from swtui.core.model.adapters import ModelAdapter

    adapter = ModelAdapter(model)
    site = adapter.check_coords(plant.layer, plant.row, plant.col)
    layer = site.layer
    g = torch.Generator().manual_seed(plant.direction_seed)
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
