"""The bundled WikiText-2 (raw) test excerpt: shipped as package data, whole articles, unmodified
(the checksum its README records), with its licence beside it."""

import hashlib
import re
from importlib import resources

HERE = resources.files("swtui.core").joinpath("data/wikitext2")
TITLE = re.compile(r"^ = [^=].* = $")
FIRST_FIVE = ["Robert Boulter", "Du Fu", "Kiss You ( One Direction song )", "Ise @-@ class battleship",
              "Dick Rifenburg"]


def articles(text: str) -> list[tuple[str, str]]:
    """(title, text) per article: a title line starts one, the next title line ends it."""
    out: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        if TITLE.match(line):
            out.append((line.strip(" =").strip(), []))
        elif out:
            out[-1][1].append(line)
    return [(title, "\n".join(body)) for title, body in out]


def test_the_excerpt_reads_from_the_package_and_holds_five_whole_articles_in_order():
    text = HERE.joinpath("wiki.test.excerpt.raw").read_text(encoding="utf-8")
    arts = articles(text)
    assert len(arts) >= 5
    assert [t for t, _ in arts] == FIRST_FIVE  # the split's first articles, in order
    assert all(len(body) > 5000 for _, body in arts)  # each whole, not a heading alone
    # whole: it ends where the sixth article's title line would start, after the last one's blank lines
    assert text.endswith("Clarence High School . \n \n \n")
    assert text.startswith(" \n = Robert Boulter = \n \n Robert Boulter is an English film")


def test_the_excerpt_is_unmodified_as_its_readme_records():
    raw = HERE.joinpath("wiki.test.excerpt.raw").read_bytes()
    readme = HERE.joinpath("README.md").read_text(encoding="utf-8")
    recorded = re.search(r"This excerpt: ([\d,]+) bytes, (\d+) lines, SHA-256\s+`([0-9a-f]{64})`", readme)
    assert recorded, "the README records the excerpt's size and checksum"
    assert len(raw) == int(recorded[1].replace(",", "")) and raw.count(b"\n") == int(recorded[2])
    assert hashlib.sha256(raw).hexdigest() == recorded[3]
    assert b"\r" not in raw  # the dataset's LF line ends, its blank lines a single space
    assert {line for line in raw.split(b"\n")[:-1] if not line.strip()} == {b" "}


def test_its_licence_and_attribution_sit_beside_it():
    licence = HERE.joinpath("LICENSE").read_text(encoding="utf-8")
    for needed in ("CC BY-SA 3.0", "GFDL", "Merity", "Xiong", "Bradbury", "Socher", "Pointer Sentinel Mixture Models",
                   "Salesforce", *("en.wikipedia.org/wiki/" + t for t in ("Robert_Boulter", "Du_Fu", "Dick_Rifenburg"))):
        assert needed in licence, needed
