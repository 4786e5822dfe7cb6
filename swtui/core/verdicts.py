"""The verdicts detection gives, each defined once (README "Detection, exactly", step 7).

A module of its own, with no imports, so that whoever needs to know which weights count as super
weights (quantization's held-out set, the engine, the CLI) does not import the impact check.
"""

from __future__ import annotations

SUPER = "super weight"  # pruning it alone hurts, its control has no effect
GROUP = "super weight group"  # no member alone, its channel's carriers together do (their controls not)
ACTIVATION = "massive activation without a super weight"  # the channel's writes matter, its weights do not
HARMLESS = "harmless"  # every interval below the threshold
INCONCLUSIVE = "inconclusive"  # anything else: an interval straddling it, an unclear control, too few tokens


def is_super_or_member(c) -> bool:
    """A candidate judged a super weight or a super-weight group's member, or not judged at all."""
    return c.verdict in (SUPER, GROUP) or (c.verdict is None and c.is_super is not False)
