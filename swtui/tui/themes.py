"""Themes: TOML files, one Textual `Theme` each, shipped in the package and read from the user's folder.

Sources, later ones winning on a name clash: the shipped `themes/*.toml` (the checkout's top-level
folder, or the wheel's `swtui/themes/`, found through
importlib.resources, so a wheel or a non-editable install has them), the user theme folder
(`platformdirs.user_config_dir("swtui")/themes`), and `SWTUI_THEMES_DIR` when set.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "swtui-dark"
_FIELDS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground", "background",
           "surface", "panel", "boost")


def user_themes_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("swtui")) / "themes"


def shipped_themes():
    """The themes swtui ships: the top-level `themes/` of a source checkout, packaged into the wheel
    as `swtui/themes/` (pyproject's package-dir)."""
    checkout = Path(__file__).resolve().parents[2] / "themes"
    if checkout.is_dir() and (checkout.parent / "pyproject.toml").is_file():  # not site-packages/themes
        return checkout
    return resources.files("swtui").joinpath("themes")


def theme_sources() -> list:
    """Folders (Traversables) to read themes from, lowest precedence first."""
    sources = [shipped_themes(), user_themes_dir()]
    override = os.environ.get("SWTUI_THEMES_DIR")
    if override:
        sources.append(Path(override))
    return sources


def parse_theme(text: str, stem: str) -> Theme:
    data = tomllib.loads(text)
    kwargs = {k: data[k] for k in _FIELDS if k in data}
    return Theme(name=data.get("name", stem), dark=bool(data.get("dark", True)),
                 variables=dict(data.get("variables", {})), **kwargs)


def load_themes(folders: list | None = None) -> tuple[list[Theme], list[str]]:
    """(themes, problems): every *.toml of every source; a broken file is reported, not fatal."""
    folders = theme_sources() if folders is None else folders
    found: dict[str, Theme] = {}
    problems = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".toml"):
                continue
            try:
                theme = parse_theme(entry.read_text(encoding="utf-8"), entry.name[:-5])
            except (OSError, ValueError, TypeError, KeyError) as exc:
                problems.append(f"theme {entry.name} ignored: {exc}")
                continue
            found[theme.name] = theme
    if not found:
        problems.append("no themes found; using Textual's built-in theme")
    return list(found.values()), problems
