"""A candidate whose treatment is decided while its controls are still measured shows the verdict
it points to marked provisional ("super weight?"), never as the verdict (issue 30: "a verdict
marked provisional while its controls are still running is acceptable only if the table says so")."""

from swtui.core.evidence.stats import Ratio
from swtui.core.engine.protocol import SuperWeightRow
from swtui.core.verdicts import Verdict
from swtui.tui.widgets.detail import evidence_lines
from swtui.tui.widgets.sw_table import FULL, RATIO, cells


def _row(**kw) -> SuperWeightRow:
    return SuperWeightRow(11, 507, 1229, value=5.88, current=5.88, state="measuring…", measuring=True, **kw)


def test_a_provisional_verdict_is_marked_and_shows_its_treatments_interval():
    row = _row(ratio=Ratio(12.1, 1.87, 78.6, 504), provisional=Verdict.SUPER)
    c = cells(row, FULL)
    assert c["verdict"].plain == "super weight?"
    assert "12.1" in c[RATIO].plain and "1.87" in c[RATIO].plain
    text = "\n".join(line for line, _, _ in evidence_lines(row, 40))
    assert "provisional" in text and "controls" in text and "measuring" in text


def test_a_decided_verdict_carries_no_mark_and_an_unmeasured_one_no_verdict():
    done = SuperWeightRow(11, 507, 1229, value=5.88, current=5.88, state="original", verdict=Verdict.SUPER,
                          is_super=True, ratio=Ratio(12.1, 1.87, 78.6, 504))
    assert cells(done, FULL)["verdict"].plain == "super weight"
    assert cells(_row(), FULL)["verdict"].plain == "—"
