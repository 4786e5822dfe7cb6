"""The evaluation plan: every causal question swtui asks, as claims with arms, measured in looks.

A **claim** is one question a verdict rests on ("pruning 11[507,1229] costs perplexity beyond what
comparable weights cost"). It has a **treatment** arm and **controls**: arms of the same kind,
matched on the quantity the claim is about (|x·w| for a weight, MLP write energy for a channel,
max |out| for an expert), each with its own magnitude. An **arm** is one edit on top of the
current state (`Edit`), measured as per-token losses paired with the baseline's on the same
corpus windows (`swtui.core.evidence.corpus`).

Arms are measured in **looks** (`Schedule`: 4, 8, 16, 32, … windows) and stop as soon as their
interval decides: a treatment when its interval clears the threshold or lies below it, a control
when it lies below the threshold, clears it, or lies below a treatment that cleared; the controls
of a treatment that lies below are not needed and stop. Borderline arms use the whole budget. A
descriptive claim (`decides=False`, e.g. writes zeroed at every token) may stop after `max_looks`.
The error is spent up front (Bonferroni): with K looks and m deciding claims, every interval is
drawn at level 1 − α/(K·m), so the stated family-wise 1 − α holds for the whole procedure —
every look of every decision — whichever look an arm stops at.

A claim's **outcome** (`Outcome`): CLEARS (the treatment's lower bound reaches the threshold and
exceeds the upper bound of every control), BELOW (its upper bound is under the threshold;
`small_effect` when the interval also excludes 1), NOT_BEYOND_CONTROLS, NO_CONTROL or UNDECIDED.
The verdicts (`swtui.core.verdicts`) are made from outcomes by the impact check
(`swtui.core.detection.impact`); this module runs nothing itself and imports no torch: the runner is
`swtui.core.evidence.arms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from swtui.core.evidence.stats import WINDOW_METHOD, Ratio

#: the family-wise error the plan keeps over every look of every decision
ALPHA = 0.05
#: windows measured by each look (cumulative); the last look takes every window of the budget. The
#: first look is small: a control of a clear treatment (ratios near 1, windows that agree) is bounded
#: beneath it by four windows, half the forwards of eight
LOOKS = (4, 8, 16, 32, 64)


class ClaimKind(str, Enum):
    """What a claim asks (its treatment's kind)."""
    WEIGHT = "weight pruned alone"
    GROUP = "carriers pruned together"
    POSITIONS = "writes zeroed at the massive positions"
    ALL_TOKENS = "writes zeroed at every token"
    EXPERT = "expert pruned"
    EXPERTS = "super experts pruned together"
    SA_RESTORE = "pruned with the super activation restored"
    ABLATION = "an ablation"


class Outcome(str, Enum):
    """What a claim's intervals say (not a verdict: verdicts combine claims)."""
    CLEARS = "clears the threshold and every control"
    BELOW = "below threshold"
    NOT_BEYOND_CONTROLS = "clears the threshold but not every control"
    NO_CONTROL = "clears the threshold, no control to compare"
    UNDECIDED = "undecided at the end of the budget"

    def __str__(self) -> str:
        return self.value


class Effect(str, Enum):
    """One interval against the threshold."""
    HURTS = "hurts"  # lower bound ≥ threshold
    BELOW = "below"  # upper bound < threshold
    UNDECIDED = "undecided"


def effect_of(ratio: Ratio | None, threshold: float) -> Effect:
    if ratio is None or not all(math.isfinite(v) for v in (ratio.value, ratio.lo)) or ratio.lo != ratio.lo:
        return Effect.UNDECIDED
    if ratio.lo >= threshold:
        return Effect.HURTS
    if ratio.hi < threshold:
        return Effect.BELOW
    return Effect.UNDECIDED


@dataclass(frozen=True)
class Edit:
    """What an arm changes on top of the current state."""
    prune: tuple = ()  # weight keys (layer, row, col[, expert]) zeroed
    sa_restore: bool = False  # with the pruned weights' super activations restored
    zero_writes: tuple = ()  # (layer, channel): the MLP writes nothing there, at every token
    zero_at: tuple = ()  # (layer, channel, positions_of): nothing at the massive positions of channel positions_of
    experts: tuple = ()  # (layer, expert): the whole expert pruned

    def first_layer(self) -> int:
        """The first decoder layer this edit touches: layers before it compute what the baseline does."""
        layers = [k[0] for k in self.prune] + [w[0] for w in self.zero_writes] + [w[0] for w in self.zero_at] \
            + [e[0] for e in self.experts]
        return min(layers) if layers else 0

    @property
    def empty(self) -> bool:
        return not (self.prune or self.zero_writes or self.zero_at or self.experts)


@dataclass(frozen=True)
class Arm:
    """One edit, measured: `what` says it in words, `magnitude` is the matched quantity."""
    name: str
    edit: Edit
    what: str
    magnitude: float | None = None


@dataclass(frozen=True)
class Claim:
    """A question: a treatment beside its controls; `decides` counts it in the family-wise error."""
    name: str
    kind: ClaimKind
    treatment: Arm
    controls: tuple[Arm, ...] = ()
    matched_on: str = ""  # what the controls are matched on
    priority: float = 0.0  # larger first: the strongest claim's verdict streams first
    decides: bool = True
    subject: tuple = ()  # the weight key, (channel,), (layer, expert): what the claim is about
    max_looks: int | None = None  # a descriptive claim stops after this many looks (None: the schedule's)

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (self.treatment,) + self.controls


@dataclass(frozen=True)
class Schedule:
    """Cumulative windows per look, and the level each interval is drawn at."""
    looks: tuple[int, ...]
    decisions: int
    alpha: float = ALPHA

    @classmethod
    def for_budget(cls, windows: int, decisions: int, looks=LOOKS, alpha: float = ALPHA) -> "Schedule":
        steps = tuple(n for n in looks if n < windows) + (windows,)
        return cls(tuple(sorted(set(steps))), max(1, decisions), alpha)

    @property
    def level(self) -> float:
        """Each interval's coverage: 1 − α/(looks × decisions) (Bonferroni)."""
        return 1 - self.alpha / (len(self.looks) * self.decisions)

    def method(self) -> str:
        return (f"{WINDOW_METHOD}; sequential looks at {', '.join(map(str, self.looks))} windows, each arm stopping "
                f"once its interval decides; error spent by Bonferroni over {len(self.looks)} looks × "
                f"{self.decisions} decisions: every interval at {self.level:.4%}, family-wise {1 - self.alpha:.0%}")

    def to_json(self) -> dict:
        return {"looks_windows": list(self.looks), "decisions": self.decisions, "alpha": self.alpha,
                "interval_level": self.level, "correction": "Bonferroni over looks × decisions"}


@dataclass
class ArmResult:
    """An arm as measured: its ratio at the look it stopped, how many looks and tokens it took."""
    arm: Arm
    ratio: Ratio | None = None
    looks: int = 0
    windows: int = 0
    stopped: str = ""  # why it stopped: "decided", "not needed", "budget"
    lag1: float | None = None  # the lag-1 correlation of its window differences (are windows independent?)

    @property
    def done(self) -> bool:
        return bool(self.stopped)

    def to_json(self) -> dict:
        from swtui.core.evidence.stats import fields

        return {"name": self.arm.name, "what": self.arm.what, "magnitude": self.arm.magnitude,
                **fields("ratio", self.ratio), "eval_tokens": self.ratio.tokens if self.ratio else 0,
                "windows": self.windows, "looks": self.looks, "stopped": self.stopped,
                "window_lag1_correlation": self.lag1}


@dataclass
class ClaimResult:
    """A claim's arms as measured and what they say."""
    claim: Claim
    treatment: ArmResult
    controls: list[ArmResult] = field(default_factory=list)
    outcome: Outcome | None = None
    threshold: float = 1.5
    level: float | None = None  # each interval's coverage (the schedule's); simultaneous: 1 − α over all

    @property
    def worst_control(self) -> ArmResult | None:
        """The control with the largest ratio (the spread the treatment must exceed)."""
        measured = [c for c in self.controls if c.ratio is not None]
        return max(measured, key=lambda c: c.ratio.value) if measured else None

    @property
    def small_effect(self) -> bool:
        """Below threshold, but the interval excludes 1: a small, real effect."""
        r = self.treatment.ratio
        return self.outcome == Outcome.BELOW and r is not None and (r.lo > 1 or r.hi < 1)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def provisional(self) -> Effect | None:
        """The treatment's effect once it is decided while some control is still measured (what the
        table shows, marked provisional, until the claim's outcome is known); None otherwise."""
        if self.done or not self.treatment.done:
            return None
        return effect_of(self.treatment.ratio, self.threshold)

    def effect(self) -> Effect:
        return effect_of(self.treatment.ratio, self.threshold)

    def to_json(self) -> dict:
        from swtui.core.evidence.stats import fields

        worst = self.worst_control
        return {"claim": self.claim.name, "kind": self.claim.kind.value, "matched_on": self.claim.matched_on,
                "outcome": None if self.outcome is None else self.outcome.value, "small_effect": self.small_effect,
                "interval_level": self.level,
                "treatment": self.treatment.to_json(), "controls": [c.to_json() for c in self.controls],
                **fields("control_spread", worst.ratio if worst else None),
                "control_spread_arm": worst.arm.name if worst else None}


def decide_arms(result: ClaimResult, threshold: float, looks: int) -> None:
    """Stop the arms whose interval decides (see the module docstring); an arm measured at all
    `looks` of its claim stops there (an arm not yet measured never stops for the budget)."""
    t = result.treatment
    t_effect = effect_of(t.ratio, threshold)
    if not t.done and (t_effect != Effect.UNDECIDED or t.looks >= looks):
        t.stopped = "decided" if t_effect != Effect.UNDECIDED else "budget"
    for c in result.controls:
        if c.done:
            continue
        if t.done and t_effect == Effect.BELOW:  # the treatment lies below: no control can change that
            c.stopped = "not needed"
            continue
        c_effect = effect_of(c.ratio, threshold)
        beneath = t_effect == Effect.HURTS and c.ratio is not None and c.ratio.hi < t.ratio.lo
        if c.looks and (c_effect != Effect.UNDECIDED or beneath):
            c.stopped = "decided"
        elif c.looks >= looks:
            c.stopped = "budget"
    if t.done and all(c.done for c in result.controls):
        result.outcome = outcome(result, threshold)


def outcome(result: ClaimResult, threshold: float) -> Outcome:
    t_effect = effect_of(result.treatment.ratio, threshold)
    if t_effect == Effect.BELOW:
        return Outcome.BELOW
    if t_effect == Effect.UNDECIDED:
        return Outcome.UNDECIDED
    if result.claim.kind == ClaimKind.SA_RESTORE or result.claim.kind == ClaimKind.ABLATION:
        return Outcome.CLEARS if not result.controls else _beyond(result)
    if not result.controls:
        return Outcome.NO_CONTROL
    return _beyond(result)


def _beyond(result: ClaimResult) -> Outcome:
    lo = result.treatment.ratio.lo
    if all(c.ratio is not None and c.ratio.hi < lo for c in result.controls):
        return Outcome.CLEARS
    return Outcome.NOT_BEYOND_CONTROLS
