"""The verdicts detection gives, each defined once (README "Detection, exactly", step 7): its
label (what JSON, snapshots and the protocol carry), its short form for narrow tables, how it is
shown, and whether quantization's "keep super weights" holds it out.

A module of its own, with no imports, so that whoever needs to know which weights count as super
weights (quantization's held-out set, the engine, the CLI, the TUI) does not import the impact
check. Adding a verdict: a member here, and the rule that gives it (`impact.py`).
"""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """A verdict; a `str` whose value is its label, so JSON and older snapshots read the same."""

    SUPER = "super weight"  # pruning it alone hurts, its control has no effect
    GROUP = "super weight group"  # no member alone, its channel's carriers together do (their controls not)
    ACTIVATION = "massive activation without a super weight"  # the channel's writes matter, its weights do not
    BELOW = "below threshold"  # every treatment's interval below the threshold (not "harmless": see small_effect)
    INCONCLUSIVE = "inconclusive"  # anything else: an interval straddling it, an unclear control, too few tokens

    def __str__(self) -> str:
        return self.value

    @property
    def short(self) -> str:
        """The label in a narrow table column."""
        return _SHORT[self]

    @property
    def emphasis(self) -> str:
        """How a table shows it: "strong" (a finding), "muted" (nothing there) or "doubt"."""
        return _EMPHASIS[self]

    @property
    def finding(self) -> bool:
        """A weight (or group) that matters: super weight or group member."""
        return self in (Verdict.SUPER, Verdict.GROUP)

    @property
    def held_out(self) -> bool:
        """Held out by "keep super weights": findings, and inconclusive ones (no evidence that they
        are harmless; holding a weight out costs one full-precision scalar)."""
        return self in (Verdict.SUPER, Verdict.GROUP, Verdict.INCONCLUSIVE)

    @classmethod
    def of(cls, value: "str | Verdict | None") -> "Verdict | None":
        return None if value is None else cls(value)

    @classmethod
    def _missing_(cls, value):
        # snapshots and recordings before "below threshold" said "harmless" for the same rule
        return cls.BELOW if value == "harmless" else None


_SHORT = {Verdict.SUPER: "super weight", Verdict.GROUP: "SW group", Verdict.ACTIVATION: "activation only",
          Verdict.BELOW: "below thr.", Verdict.INCONCLUSIVE: "inconclusive"}
_EMPHASIS = {Verdict.SUPER: "strong", Verdict.GROUP: "strong", Verdict.ACTIVATION: "strong",
             Verdict.BELOW: "muted", Verdict.INCONCLUSIVE: "doubt"}

# the names the rest of the code imported before the enum (one spelling: these *are* the members)
SUPER, GROUP, ACTIVATION, BELOW, INCONCLUSIVE = (Verdict.SUPER, Verdict.GROUP, Verdict.ACTIVATION,
                                                 Verdict.BELOW, Verdict.INCONCLUSIVE)


def is_super_or_member(c) -> bool:
    """A candidate judged a super weight or a super-weight group's member, or not judged at all
    (named by the user, or detection run without the impact check)."""
    if c.verdict is None:
        return c.is_super is not False
    return Verdict(c.verdict).finding
