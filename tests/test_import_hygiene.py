"""swtui/core never imports Textual; swtui/tui never does torch work itself; the core's packages import
only the packages below them."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE_MODULES = sorted(".".join(p.relative_to(ROOT / "swtui" / "core").with_suffix("").parts)
                      for p in (ROOT / "swtui" / "core").rglob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module):
    code = f"import sys, swtui.core.{module}; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tui_has_no_torch_imports():
    offenders = []
    for path in (ROOT / "swtui" / "tui").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import torch", "from torch", "import transformers", "from transformers")):
                offenders.append(f"{path.name}: {stripped}")
    assert offenders == []


def test_tui_starts_without_torch():
    """The first frame can appear before torch is imported: the app module does not import it."""
    code = "import sys, swtui.cli, swtui.tui.app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def import_graph() -> dict[str, set[str]]:
    """swtui module -> the swtui modules it imports, anywhere in its body (lazy imports count)."""
    import ast

    mods = {}
    for path in (ROOT / "swtui").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = path
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("swtui"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


#: layer -> the layers it may import (cli → tui → core; the leaves import no other swtui layer)
LAYERS = {"swtui.cli": {"swtui.tui", "swtui.core", "swtui.fmt", "swtui"},
          "swtui.tui": {"swtui.core", "swtui.fmt", "swtui"},
          "swtui.core": {"swtui"},
          "swtui.fmt": set()}


def _layer(module: str) -> str:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), module)


def test_layers_cli_tui_core():
    bad = []
    for module, imports in import_graph().items():
        allowed = LAYERS.get(_layer(module))
        if allowed is None:
            continue
        for target in imports:
            if _layer(target) != _layer(module) and _layer(target) not in allowed:
                bad.append(f"{module} imports {target}")
    assert bad == []


def test_no_import_circles():
    graph = import_graph()
    cycles, state, stack = [], {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if v == "swtui":  # the package root only holds __version__
                continue
            if state.get(v) == "open":
                cycles.append(" → ".join(stack[stack.index(v):] + [v]))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


#: the edit layer (keys, ledger, hooks, session) and the metrics read the model; the quantizers and
#: the protocol are built on them. A quantizer reaches the ledger as an object (`ledger.Quantizer`:
#: it reads back the weights it packed and installs its own activation hooks); the records the
#: protocol carries live in `payloads`.
BELOW = ("swtui.core.edits.keys", "swtui.core.edits.ledger", "swtui.core.edits.hooks",
         "swtui.core.edits.session", "swtui.core.evidence.metrics")
ABOVE = ("swtui.core.quant.session", "swtui.core.engine.protocol",
         "swtui.core.engine.engine", "swtui.core.engine.handlers")


def test_the_edit_layer_imports_no_quantizer_and_no_protocol():
    graph = import_graph()
    bad = sorted(f"{m} imports {t}" for m in BELOW for t in graph[m] if t in ABOVE)
    assert bad == []


#: swtui.core's packages, bottom to top: each imports only the leaves (swtui.core's own modules:
#: errors, defaults, verdicts, throttle) and the packages before it (docs/ARCHITECTURE.md)
CORE_ORDER = ("model", "edits", "quant", "evidence", "detection", "snapshot", "engine")
CORE = ROOT / "swtui" / "core"


def _core_rank(module: str) -> int | None:
    """-1 for a leaf, the package's place in CORE_ORDER, None outside swtui.core's modules."""
    parts = module.split(".")
    if parts[:2] != ["swtui", "core"] or len(parts) < 3:
        return None
    return CORE_ORDER.index(parts[2]) if parts[2] in CORE_ORDER else -1


def test_every_core_package_has_its_place_in_the_order():
    packages = sorted(p.parent.name for p in CORE.glob("*/__init__.py"))
    assert packages == sorted(CORE_ORDER)


def test_core_packages_import_only_packages_below_them():
    bad = []
    for module, imports in import_graph().items():
        rank = _core_rank(module)
        if rank is None:
            continue
        for target in imports:
            if (t := _core_rank(target)) is not None and t > rank:
                bad.append(f"{module} imports {target}")
    assert sorted(bad) == []


def test_core_package_inits_import_nothing():
    """An __init__ names its package's surface in its docstring and imports nothing: importing
    swtui.core.engine.protocol (the TUI does) must not bring the engine, hence torch, with it."""
    import ast

    bad = [str(p.relative_to(ROOT)) for p in CORE.rglob("__init__.py")
           if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(ast.parse(p.read_text())))]
    assert bad == []
