"""Number formats shared by the command line and the TUI (no dependencies)."""

from __future__ import annotations


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits}e}"
        return f"{value:,.{digits}f}"
    return str(value)


def compact(value, digits: int = 1) -> str:
    """24021.9 -> '24.0k': numbers that fit narrow columns."""
    if value is None:
        return "—"
    for bound, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= bound:
            return f"{value / unit:.{digits}f}{suffix}"
    return f"{value:.{digits}f}"
