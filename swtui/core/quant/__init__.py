"""Quantization as the paper's experiment: round-to-nearest with clipping and held-out weights
(`rtn`), what to quantize and how (`config`: `QuantConfig`, `Variant`, `parse_config`,
`quant_confound`; no torch), the quantizers a session applies through the ledger (`session`:
`apply_quant_config`, `held_out_keys`) and the presets (`presets`).
"""
