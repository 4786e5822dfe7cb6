"""How the TUI writes the numbers a verdict rests on, in whatever columns it has.

One place turns a ratio (anything with `value`, `lo`, `hi` and `tokens`, as `evidence.Ratio`) into
text: `ratio_forms` lists its forms from the widest to the narrowest, `ratio_text` takes the widest
that fits. A narrow column gets a shorter *form*, never a number cut mid-way:

    ×4.26 [3.61, 5.03]    full: 3 significant digits
    ×4.26 [3.61–5.03]     the same digits, tighter
    4.3×[3.6–5.0]         compact: 2 significant digits
    ×4.3                  the value alone (the interval is in the detail pane)

`sig` writes a number with fixed significant digits (trailing zeros kept: 1.00, not 1), so a
column of them lines up and its width is known before it is drawn. No Textual, no torch: the
table, the detail pane and the stopword pane all format through here.
"""

from __future__ import annotations

import math


def sig(v: float | None, digits: int = 3) -> str:
    """`v` with `digits` significant digits: 0.308, 17.5, 4.26, 1.00; 12.3k past 10^digits;
    2.10e-4 below 10⁻³; "—" for None."""
    if v is None:
        return "—"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0" if digits <= 1 else "0." + "0" * (digits - 1)
    rounded = float(f"{v:.{digits - 1}e}")  # rounding may carry into the next decade (9.996 -> 10.0)
    exp = math.floor(math.log10(abs(rounded)))
    if exp < -3:
        mantissa, e = f"{rounded:.{max(digits - 1, 0)}e}".split("e")
        return f"{mantissa}e{int(e)}"
    if digits <= exp < 3:  # hundreds at 2 digits: rounded to them (356 -> 360)
        return str(int(rounded))
    if exp >= digits:  # past the digits: a unit suffix, then an exponent
        for power, suffix in ((9, "G"), (6, "M"), (3, "k")):
            if exp >= power:
                if exp - power >= digits:
                    break
                return sig(v / 10 ** power, digits) + suffix
        mantissa, e = f"{rounded:.{max(digits - 1, 0)}e}".split("e")
        return f"{mantissa}e{int(e)}"
    return f"{rounded:.{max(digits - 1 - exp, 0)}f}"


def ratio_forms(r) -> list[str]:
    """The forms of a ratio and its 95% interval, widest first (see the module's docstring)."""
    if r is None:
        return ["—"]
    v3, lo3, hi3 = sig(r.value), sig(r.lo), sig(r.hi)
    v2, lo2, hi2 = sig(r.value, 2), sig(r.lo, 2), sig(r.hi, 2)
    return [f"×{v3} [{lo3}, {hi3}]", f"×{v3} [{lo3}–{hi3}]", f"{v2}×[{lo2}–{hi2}]", f"×{v2}"]


#: the form indexes, by name (a table asks for one by index, `ratio_text` for one that fits)
FULL, TIGHT, COMPACT, VALUE = range(4)


def ratio_text(r, width: int | None = None, form: int = FULL) -> str:
    """The widest form of `r`, from `form` on, that fits `width` columns (the narrowest if none)."""
    forms = ratio_forms(r)
    forms = forms[min(form, len(forms) - 1):]
    if width is not None:
        for text in forms:
            if len(text) <= width:
                return text
    return forms[-1] if width is not None else forms[0]


def spread(ratios: list) -> str | None:
    """Several controls' ratios as their range, ×0.998–1.01 (None without any)."""
    values = [r.value for r in ratios if r is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    return f"×{sig(lo)}" if len(values) == 1 or sig(lo) == sig(hi) else f"×{sig(lo)}–{sig(hi)}"


def fit_words(text: str, width: int) -> str:
    """`text` shortened at a word boundary (ending in "…") to `width` columns: a number in it
    is either whole or gone, never cut mid-way."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    words, out = text.split(" "), ""
    for w in words:
        candidate = f"{out} {w}" if out else w
        if len(candidate) + 1 > width:
            break
        out = candidate
    return (out.rstrip(" ,;:·—(") + "…") if out else "…"


def printable(text: str) -> str:
    """Model output made safe to draw: a control character (ESC, BEL, …, other than a newline or a
    tab) becomes its visible picture (␛), so a generation can neither drive the terminal nor break
    an exported screen.svg."""
    return "".join(chr(0x2400 + ord(c)) if ord(c) < 32 and c not in "\n\t" else "␡" if c == "\x7f"
                   else "�" if 0x80 <= ord(c) < 0xa0 else c for c in text)
