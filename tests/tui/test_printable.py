"""Model output never reaches the terminal or an exported screen.svg as control characters (a tiny
model's greedy generation held an ESC: the comparison's snapshot was not valid XML)."""

import pathlib
import re

from swtui.tui.evidence_text import printable

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def test_printable_keeps_every_character_and_shows_the_controls():
    text = "Paris\x1b[31m red\x07\n\tok\x7f"
    shown = printable(text)
    assert len(shown) == len(text)  # the first divergence's offset still points at the same character
    assert not CONTROL.search(shown) and "\n\t" in shown and "␛[31m" in shown


def test_no_snapshot_holds_a_control_character():
    root = pathlib.Path(__file__).resolve().parents[1]
    svgs = sorted(root.glob("*/__snapshots__/**/*.svg"))
    assert len(svgs) >= 19, svgs
    bad = [str(p.relative_to(root)) for p in svgs if CONTROL.search(p.read_text(encoding="utf-8"))]
    assert bad == []
