"""Themes from the top-level themes/ folder (TOML files, one textual Theme each)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "swtui-dark"
_FIELDS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground", "background",
           "surface", "panel", "boost")


def themes_dir() -> Path:
    override = os.environ.get("SWTUI_THEMES_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "themes"


def load_theme_file(path: Path) -> Theme:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    kwargs = {k: data[k] for k in _FIELDS if k in data}
    return Theme(name=data.get("name", path.stem), dark=bool(data.get("dark", True)),
                 variables=dict(data.get("variables", {})), **kwargs)


def load_themes(folder: Path | None = None) -> tuple[list[Theme], list[str]]:
    """(themes, problems): every *.toml in the folder; a broken file is reported, not fatal."""
    folder = folder or themes_dir()
    themes, problems = [], []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            themes.append(load_theme_file(path))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"theme {path.name} ignored: {exc}")
    if not themes:
        problems.append(f"no themes found in {folder}; using Textual's built-in theme")
    return themes, problems
