"""What a measurement of the model says, as the values the protocol carries: `Metrics` (one
variant's perplexity, stopword mass, generation) and the stopword report (`StopwordReport`, its
`TokenShift`s). Made by `swtui.core.evidence.metrics`; no tensors, no torch (the TUI reads them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from swtui.core.evidence.stats import Difference


@dataclass(frozen=True)
class Metrics:
    """What one variant of the model does: perplexity on the evaluation text, stopword mass on the
    stopword prompts and (when asked) a greedy generation. Made by `swtui.core.evidence.metrics.measure`."""
    perplexity: float
    stopword_mass: float
    generation: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TokenShift:
    """One next-token probability, untouched model vs current (mean over the stopword prompts)."""
    token: str
    base: float
    current: float

    @property
    def ratio(self) -> float:
        return self.current / self.base if self.base > 0 else float("inf")


@dataclass(frozen=True)
class StopwordReport:
    """Stopword mass per variant, and the tokens whose probability moved most (both measured)."""
    mass: dict[str, float]
    top_stopwords: tuple[TokenShift, ...] = ()
    top_other: tuple[TokenShift, ...] = ()
    change: Difference | None = None  # mass current − base over the contexts, with its 95% interval
    contexts: int = 0  # positions the mass is averaged over (0: a fixed prompt list)

    def to_dict(self) -> dict:
        return {"mass": dict(self.mass), "top_stopwords": [dataclasses.asdict(t) for t in self.top_stopwords],
                "top_other": [dataclasses.asdict(t) for t in self.top_other],
                "change": None if self.change is None else dataclasses.asdict(self.change),
                "contexts": self.contexts}
