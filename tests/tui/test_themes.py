"""Themes ship from the top-level themes/ (a wheel has them as swtui/themes/) and the user's theme
folder is read too."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from swtui.tui.themes import load_themes

SHIPPED = {"swtui-dark", "swtui-light", "solarized-dark"}


def test_themes_load_from_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # an empty user folder
    monkeypatch.delenv("SWTUI_THEMES_DIR", raising=False)
    themes, problems = load_themes()
    assert {t.name for t in themes} == SHIPPED and problems == []


def test_user_theme_folder_is_read_and_a_broken_theme_reported(tmp_path, monkeypatch):
    folder = tmp_path / "swtui" / "themes"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text('name = "mine"\nprimary = "#ff8800"\ndark = true\n')
    (folder / "broken.toml").write_text("name = [unclosed\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("SWTUI_THEMES_DIR", raising=False)
    themes, problems = load_themes()
    assert {t.name for t in themes} == SHIPPED | {"mine"}
    assert len(problems) == 1 and "broken.toml" in problems[0]


def test_a_built_wheel_carries_the_themes(tmp_path):
    """A non-editable install must find its themes and data: build the wheel, import from it alone."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")
    import shutil

    root = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(Path(__file__).resolve().parents[2], root,
                    ignore=shutil.ignore_patterns(".venv", ".git", ".dev", "build", "*.egg-info", "__pycache__",
                                                  "tests", "snapshots", "bench"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", str(root), "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("swtui-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    repo = Path(__file__).resolve().parents[2]
    assert not (repo / "swtui" / "themes").exists() and sorted((repo / "themes").glob("*.toml"))  # the design card
    assert {f"swtui/themes/{p.name}" for p in (repo / "themes").glob("*.toml")} <= names
    packages = {str(p.parent.relative_to(repo)) for p in (repo / "swtui").rglob("__init__.py")}
    missing = {p for p in packages if f"{p}/__init__.py" not in names}
    assert not missing, f"packages left out of the wheel (pyproject's packages list): {sorted(missing)}"
    # every data file, in subfolders too (the bundled WikiText-2 excerpt, its LICENSE and README)
    data = {str(p.relative_to(repo)) for p in (repo / "swtui" / "core" / "data").rglob("*") if p.is_file()}
    assert "swtui/core/data/wikitext2/wiki.test.excerpt.raw" in data
    assert not data - names, f"data left out of the wheel (pyproject's package-data): {sorted(data - names)}"
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    env.pop("SWTUI_THEMES_DIR", None)
    code = ("import swtui, sys; from swtui.tui.themes import load_themes; "
            "assert swtui.__file__.startswith(sys.argv[1]), swtui.__file__; "
            "print(sorted(t.name for t in load_themes()[0]))")
    out = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted(SHIPPED))
