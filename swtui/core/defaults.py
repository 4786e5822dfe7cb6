"""The prompts every front end starts from, said once (no torch: the CLI parser reads them)."""

#: the data-free probe: one prompt whose down_proj spikes give the super weight's coordinates
PROBE_PROMPT = "Apple Inc. is a worldwide tech company."
#: the greedy generation compared baseline vs current
GEN_PROMPT = "The capital of France is"
