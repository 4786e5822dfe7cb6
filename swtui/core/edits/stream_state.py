"""The ledger's side of a streamed model (`swtui.core.model.stream`): its state applied to each read.

A streamed decoder layer is read from the files for each pass, so the ledger has no tensor to
rewrite there: W_current = E(Z(W_pristine)) is computed on the freshly read pristine tensor, in
place, as the layer is put in place (`_overlay`), from the same state `_materialize` computes from.
A transition only changes that state (and its version, so a live layer is refreshed); restoring is
the state without the edit; nothing is written back to the files, and no half-applied tensor can
outlive a cancelled pass.
"""

from __future__ import annotations

from swtui.core.edits.keys import edited_scalar
from swtui.core.model.stream.shards import flat_index


class StreamedState:
    """Mixed into `EditLedger`; every method is a no-op for an in-memory model."""

    _stream = None
    _stream_zeros: dict = {}
    _stream_version = 0

    def _init_stream(self, stream) -> None:
        self._stream = stream
        self._stream_zeros = {}  # the zero masks with the pruned experts', as `_overlay` applies them
        self._stream_version = 0
        if stream is not None:
            stream.overlay = self._overlay
            stream.indices = self._overlay_indices
            stream.state_version = lambda: self._stream_version

    def _streamed(self, name: str) -> bool:
        """True for a parameter read from the files at each pass (a streamed decoder layer's)."""
        return self._stream is not None and self._stream.streams(name)

    def _streamed_state(self, zeros: dict) -> None:
        """After a transition: the masks (pruned experts' included) of the streamed parameters."""
        if self._stream is not None:
            self._stream_zeros = {n: z.reshape(-1).long() for n, z in zeros.items() if self._streamed(n)}
            self._stream_version += 1
            self._stream.refresh()

    def _overlay_indices(self, name: str, shape):
        """The flat positions of parameter `name` that `_overlay` sets (None: none)."""
        import torch

        parts = []
        zeros = self._stream_zeros.get(name)
        if zeros is not None:
            parts.append(zeros)
        keys = self._keys_in(name, self._edits)
        if keys:
            parts.append(torch.tensor([flat_index(self._site_idx(k)[1], shape) for k in keys], dtype=torch.long))
        return torch.cat(parts) if parts else None

    def _overlay(self, name: str, w) -> None:
        """Apply the current state to `w`, parameter `name` just read (pristine), in place: Z (zero
        masks, pruned experts) then E (scalar edits), as `_materialize` computes them."""
        zeros = self._stream_zeros.get(name)
        if zeros is not None:
            w.view(-1)[zeros.to(w.device)] = 0
        for key in self._keys_in(name, self._edits):
            _, idx = self._site_idx(key)
            w[idx] = edited_scalar(self._scalars[key], self._edits[key]).to(w.device)

    def _streamed_value(self, key, site, idx) -> float:
        """The value `_overlay` writes at `key` (read from the files where no edit sets it)."""
        if key in self._edits:
            return float(edited_scalar(self._scalars[key], self._edits[key]))
        zeros = self._stream_zeros.get(site.weight_name)
        if zeros is not None and bool((zeros == flat_index(idx, site.weight.shape)).any()):
            return 0.0
        return float(self.pristine_scalar(key))
