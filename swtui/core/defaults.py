"""The prompts every front end starts from and the defaults several layers share, said once (no
torch: the CLI parser reads them)."""

#: the data-free probe: one prompt whose down_proj spikes give the super weight's coordinates
PROBE_PROMPT = "Apple Inc. is a worldwide tech company."
#: the greedy generation compared baseline vs current
GEN_PROMPT = "The capital of France is"

# -- quantization and sweeps: each default said once (CLI, protocol, TUI and presets read these)
#: the paper's weight bits (W4); on a source already at ≤ 4 bits the default drops one bit below it
#: (`SourceQuant.default_bits`): W4 on a Q4 source measures the source's grid, not the method
PAPER_BITS = 4
#: z of the paper's clipping (|W| clamped at z·std + mean per group)
CLIP_Z = 9.0
#: the block-size sweep's 1-D blocks (None: per tensor)
SWEEP_BLOCKS: tuple = (64, 256, 1024, 4096, 16384, 65536, None)
#: the scale sweep's factors (0 = pruned, 1 = untouched)
SCALE_FACTORS: tuple = (0.0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0)

# -- the massive-activation rule: detection (`channels`) finds massive channels with it, and the
# impact check's runner (`arms`) locates, per window, where each of them is massive
#: an entry at least this many times its layer's median |h| …
MASSIVE_RATIO = 100.0
#: … and at least this share of its layer's largest |h|
MASSIVE_TOP_SHARE = 0.1
