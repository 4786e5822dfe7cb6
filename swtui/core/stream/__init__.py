"""Layer streaming (`--stream`): models larger than the machine, one decoder layer's weights in
memory at a time (`layers`), read from safetensors shards (`shards`, `keys`), every arm of a look
in one pass over the weights (`lockstep`, `plan`). Importing this package imports no torch."""
