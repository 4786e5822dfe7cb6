"""`make bench ARGS=--big`: models larger than the machine, made here (never downloaded).

A Llama-shaped model with random bf16 weights and a planted super weight is written as safetensors
shards, one layer at a time (the whole model never exists in memory), and cached under the user
cache dir (`SWTUI_CACHE_DIR/bench/NAME`). Shapes: `1b` (0.8B parameters, 1.6 GB) is scanned three
ways — streamed, in memory, `--device-map auto` with a 1 GiB CPU budget (the rest offloaded) —
with the same arms; `13b` (12.7B, 25 GB: more than this machine's RAM) only streamed. Each scan runs
in a fresh process: wall time, peak RSS, bytes read (the stream's count and the kernel's), the
planted weight's verdict with its interval. The planted weight is made to matter the way
`swtui.core.model.tiny` does for its MoE families: the final norm ignores its channel and sharpens the
others, so the super activation calms the logits and pruning it makes perplexity rise.

    python bench/big.py write 1b          # writes (or finds) the model, prints its folder
    python bench/big.py scan 1b stream    # one scan, one JSON line
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # name: (hidden, intermediate, layers, heads)
    "mini": (256, 688, 6, 4),  # a smoke test of this script
    "1b": (2048, 5632, 16, 16),
    "13b": (5120, 13824, 40, 40),
}
PLANT = dict(layer=1, row=5, col=17, value=6.0, gain=20.0)
SHARPEN = 20.0
STD = 0.02  # transformers' initializer_range
LAYERS_PER_SHARD = 2


def folder_of(name: str) -> Path:
    from swtui.core.model.gguf_cache import cache_root

    return cache_root() / "bench" / f"llama-{name}-planted"


def write(name: str) -> Path:
    """The model of shape `name` (cached: a folder with `complete` is reused as it is)."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    from swtui.core.model.tiny import byte_tokenizer

    folder = folder_of(name)
    if (folder / "complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    hidden, inter, layers, heads = SHAPES[name]
    tok = byte_tokenizer()
    vocab = len(tok)
    config = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
                         vocab_size=vocab, bos_token_id=vocab - 1, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
                         tie_word_embeddings=False, torch_dtype="bfloat16")
    config.save_pretrained(folder)
    tok.save_pretrained(folder)
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: (torch.randn(*shape, generator=g) * STD).to(torch.bfloat16)  # noqa: E731
    shards: list[dict] = []
    gains = torch.full((hidden,), SHARPEN)
    gains[PLANT["row"]] = 0.0  # the final norm ignores the super activation's channel
    shards.append({"model.embed_tokens.weight": rand(vocab, hidden), "lm_head.weight": rand(vocab, hidden),
                   "model.norm.weight": gains.to(torch.bfloat16)})
    direction = torch.randn(hidden, generator=torch.Generator().manual_seed(1234))
    direction = direction / direction.norm()
    names, weight_map = [], {}

    def flush(tensors: dict) -> None:
        path = f"model-{len(names) + 1:05d}.safetensors"
        save_file(tensors, str(folder / path), metadata={"format": "pt"})
        names.append(path)
        weight_map.update({k: path for k in tensors})

    flush(shards.pop())
    shard: dict = {}
    for i in range(layers):
        p = f"model.layers.{i}."
        t = {p + "input_layernorm.weight": torch.ones(hidden, dtype=torch.bfloat16),
             p + "post_attention_layernorm.weight": torch.ones(hidden, dtype=torch.bfloat16)}
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[p + f"self_attn.{proj}.weight"] = rand(hidden, hidden)
        gate, up, down = rand(inter, hidden), rand(inter, hidden), rand(hidden, inter)
        if i == PLANT["layer"]:  # the outlier input channel col, and W[row, col] large (swtui.core.model.tiny)
            c = PLANT["col"]
            gate[c] = (PLANT["gain"] * direction).to(torch.bfloat16)
            up[c] = (PLANT["gain"] * direction).to(torch.bfloat16)
            down[:, c] *= 1e-4
            down[PLANT["row"], c] = PLANT["value"]
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"], t[p + "mlp.down_proj.weight"] = gate, up, down
        shard.update(t)
        if (i + 1) % LAYERS_PER_SHARD == 0 or i + 1 == layers:
            flush(shard)
            shard = {}
            print(f"… wrote layers up to {i + 1}/{layers}", file=sys.stderr, flush=True)
    total = sum((folder / n).stat().st_size for n in names)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": weight_map}))
    (folder / "complete").write_text(json.dumps({"shape": SHAPES[name], "plant": PLANT, "bytes": total}))
    return folder


def _io() -> dict:
    out = {}
    with open("/proc/self/io") as fh:
        for line in fh:
            k, v = line.split(":")
            out[k] = int(v)
    return out


def scan(name: str, mode: str) -> dict:
    """One scan of the planted model (`mode`: stream | memory | offload), measured in this process."""
    import torch

    from swtui.core.detection.detect import DetectOptions, detect
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    folder = write(name)
    offload = tempfile.mkdtemp(prefix="swtui-offload-") if mode == "offload" else None
    opts = LoadOptions(device="cpu", dtype="float32", stream=mode == "stream",
                       device_map="auto" if mode == "offload" else None,
                       max_memory={"cpu": "1GiB"} if mode == "offload" else None, offload_folder=offload)
    io0, t0 = _io(), time.perf_counter()
    session = Session(load_model(str(folder), opts))
    loaded_s = time.perf_counter() - t0
    looks: dict = {}
    stream = session.loaded.stream
    if stream is not None:
        def on_layer(e):
            if e.look is not None:
                looks.setdefault(e.look, 0)
                looks[e.look] += stream.layer_bytes[e.layer]
            if e.layer + 1 == e.layers:
                print(f"… {e.text()}", file=sys.stderr, flush=True)
        stream.on_layer = on_layer
    det = detect(session, DetectOptions(together=False))  # each candidate beside its 5 controls
    total = time.perf_counter() - t0
    io1 = _io()
    key = (PLANT["layer"], PLANT["row"], PLANT["col"])
    planted = next((c for c in det.candidates if c.key == key), None)
    out = {"shape": name, "mode": mode, "weights_bytes": json.loads((folder / "complete").read_text())["bytes"],
           "load_s": loaded_s, "total_s": total, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "disk_read_bytes": io1["read_bytes"] - io0["read_bytes"], "read_syscall_bytes": io1["rchar"] - io0["rchar"],
           "candidates": [[list(c.key), str(c.verdict), c.ratio.text() if c.ratio else None] for c in det.candidates],
           "planted_found": planted is not None,
           "planted_verdict": str(planted.verdict) if planted else None,
           "planted_ratio": planted.ratio.text() if planted and planted.ratio else None,
           "plan_cost": det.impact.cost if det.impact else None}
    if stream is not None:
        out["stream"] = {**stream.stats.to_json(), "peak_layers_alive": stream.peak_live,
                         "bytes_per_pass": stream.pass_bytes, "bytes_per_look": {str(k): v for k, v in looks.items()},
                         "held_bytes": sum(p.numel() * p.element_size() for n, p in session.model.named_parameters()
                                           if not stream.streams(n))}
    return out


def run_all(shapes: list[str], run) -> dict:
    """What `bench/run.py --big` prints: each shape written (cached), then scanned in fresh processes."""
    results = {}
    for name in shapes:
        run("big.py", "write", name)
        modes = ("stream", "memory", "offload") if name == "1b" else ("stream",)
        results[name] = {m: run("big.py", "scan", name, m) for m in modes}
    return results


if __name__ == "__main__":
    what, name = sys.argv[1], sys.argv[2]
    if what == "write":
        print(json.dumps({"folder": str(write(name))}))
    else:
        print(json.dumps(scan(name, sys.argv[3])))
