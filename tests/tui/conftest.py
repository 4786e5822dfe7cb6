"""The TUI suite runs on a fake engine replaying a recorded demo session, without torch.

`make test` runs it in a process of its own (`pytest tests/tui`), where importing torch,
transformers, accelerate, bitsandbytes or safetensors fails and every test checks that none of
them was loaded. In a run over other folders too (a plain `pytest`) the suite is skipped: it
could not prove anything about torch there. The real engine behind the TUI is tested in
tests/e2e.
"""

import importlib.abc
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "accelerate", "bitsandbytes", "safetensors")
HERE = Path(__file__).resolve().parent
TORCH_FREE = False  # set when this process runs the TUI suite alone


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in HEAVY:
            raise ImportError(f"the TUI suite runs without torch: something imported {fullname}")
        return None


def pytest_configure(config):
    global TORCH_FREE
    paths = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    alone = paths and all(p == HERE or HERE in p.parents for p in paths)
    if alone and not any(name in sys.modules for name in HEAVY):
        TORCH_FREE = True
        sys.meta_path.insert(0, _Refuse())


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
