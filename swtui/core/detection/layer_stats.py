"""What a probe records about one decoder layer (`LayerStats`): the spikes of its down projection
and of the residual stream after it. Made by `swtui.core.detection.probe`; one frozen record, no
tensors, no torch, so the protocol's `LayerRow` (the same record and the weight now) and the TUI
that reads it stay torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LayerStats:
    """One decoder layer of a probe."""
    layer: int
    in_max: float  # max |down_proj input| and where: channel → the super weight's col
    in_channel: int
    in_token: int
    out_max: float  # max |down_proj output| and where: channel → the super weight's row
    out_channel: int
    out_token: int
    out_value: float  # signed value at the output spike
    resid_max: float  # max |residual stream| after the layer
    resid_channel: int
    # exact attribution at the output spike (token t, channel r): the input channel c with the
    # largest |x[t,c]·W[r,c]| and that term's share of y[t,r] (None for packed weights)
    attr_col: int | None = None
    attr_share: float | None = None
    # the MLP's write into the residual stream at the output spike (t, r): the down_proj output
    # itself, or the post-FFN norm's output where one follows; the norm's gain on channel r
    write_value: float | None = None
    norm_gain: float | None = None
    # fused experts (`swtui.core.model.moe`): the expert whose down projection wrote the output spike
    # (the layer's figures are the max over its routed experts), and per routed expert
    # [expert, routed tokens, max |out|, out channel, out token, max |in|, col]
    expert: int | None = None
    experts: list[list[float]] | None = None

    def to_dict(self) -> dict:
        return asdict(self)
