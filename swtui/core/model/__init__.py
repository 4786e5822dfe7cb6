"""How the weights are held: a model loaded (`loading`: `load_model`, `LoadOptions`,
`LoadedModel`), from the GGUF cache (`gguf_cache`), the demo model (`demo`) or a tiny random one
(`tiny`); how its source stored them (`source_quant`: `SourceQuant`); the family adapters that
name its decoder layers and down projections (`adapters`: `ModelAdapter`); fused experts (`moe`);
offloaded weights (`offload`); streamed, one decoder layer at a time (`stream`); and its one
description (`info`: `ModelInfo`). The bottom layer: imports only swtui.core's leaves.
"""
