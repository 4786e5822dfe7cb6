"""The TUI suite runs on a fake engine replaying a recorded demo session, without torch.

`make test` runs it in a process of its own (`pytest tests/tui`), where importing torch,
transformers, accelerate, bitsandbytes or safetensors fails and every test checks that none of
them was loaded. In a run over other folders too (a plain `pytest`) the suite is skipped: it
could not prove anything about torch there. The real engine behind the TUI is tested in
tests/e2e.

`make test` sets SWTUI_TUI_SUITE=1: then the suite must prove itself. A heavy module already
imported is an error rather than a skip, and the run fails unless every collected test ran (none
skipped, at least one collected), so a suite that silently stopped proving anything is red.
"""

import importlib.abc
import os
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "accelerate", "bitsandbytes", "safetensors")
HERE = Path(__file__).resolve().parent
TORCH_FREE = False  # set when this process runs the TUI suite alone
MUST_RUN = os.environ.get("SWTUI_TUI_SUITE") == "1"  # make test: skipping is failing
_ran: dict[str, int] = {"run": 0, "skipped": 0}


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in HEAVY:
            raise ImportError(f"the TUI suite runs without torch: something imported {fullname}")
        return None


def pytest_configure(config):
    global TORCH_FREE
    paths = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    alone = paths and all(p == HERE or HERE in p.parents for p in paths)
    loaded = [name for name in HEAVY if name in sys.modules]
    if alone and not loaded:
        TORCH_FREE = True
        sys.meta_path.insert(0, _Refuse())
    elif MUST_RUN:
        why = (f"{', '.join(loaded)} imported before the suite started" if loaded
               else "run over other folders too")
        raise pytest.UsageError(f"SWTUI_TUI_SUITE=1 but the TUI suite cannot prove itself torch-free: {why}")


def pytest_collection_modifyitems(config, items):
    if TORCH_FREE:
        return
    skip = pytest.mark.skip(reason="the TUI suite proves itself torch-free in a process of its own: "
                                   "`pytest tests/tui` (make test runs it so)")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def no_torch():
    assert TORCH_FREE
    yield
    loaded = [name for name in HEAVY if name in sys.modules]
    assert loaded == [], f"the TUI loaded {loaded}"


def pytest_runtest_logreport(report):
    if report.when == "call" and not report.skipped:
        _ran["run"] += 1
    elif report.skipped:
        _ran["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    if not MUST_RUN or exitstatus not in (0, 5):
        return
    selected = len(getattr(session, "items", []))
    if _ran["run"] == 0 or _ran["skipped"] or _ran["run"] != selected:
        print(f"\nSWTUI_TUI_SUITE: {selected} selected, {_ran['run']} run, {_ran['skipped']} skipped: "
              "every selected TUI test must run", file=sys.stderr)
        session.exitstatus = 5 if selected == 0 else 1
