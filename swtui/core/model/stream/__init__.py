"""Layer streaming (`--stream`): models larger than the machine, one decoder layer's weights in
memory at a time (`layers`: `LayerStream`), read from safetensors shards (`shards`: `ShardIndex`,
`keys`), opened by `opening` (`open_streamed`). The ledger's side of a streamed model is
`swtui.core.edits.stream_state`; every arm of a look in one pass over the weights is
`swtui.core.evidence.lockstep` and `swtui.core.evidence.stream_plan`. Importing this package
imports no torch.
"""
