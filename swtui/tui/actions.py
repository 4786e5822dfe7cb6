"""Every action of the inspector, once: its keys, footer label, palette title, help text and what
it needs. The bindings, the command palette (dimming what does not apply now), the help screen
and the README key table (checked by a test) all come from `ACTIONS`."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

#: what an action needs before it can do anything, and how to say so
NEEDS = {
    "loaded": "the model is still loading",
    "probe": "no probe yet: wait for the chart",
    "selection": "no super weight selected: detect (d) or name a spike (n) first",
    "groups": "no candidates judged yet: run detection (d)",
}


@dataclass(frozen=True)
class Action:
    name: str  # the app's action (method action_<name>, arguments allowed)
    keys: str  # Textual key names, comma-separated; "" for palette-only actions
    label: str  # footer label
    title: str  # command palette title ("" to leave it out of the palette)
    help: str  # what it does (palette and help screen)
    show: bool = True  # in the footer
    needs: str | None = None  # a key of NEEDS
    help_keys: str = ""  # how the help screen writes the keys (default: from `keys`)
    scope: str = "screen"  # "screen": a MainScreen action; "app": the app's (works over every screen)

    @property
    def method(self) -> str:
        return self.name.split("(")[0]

    def key_text(self) -> str:
        if self.help_keys:
            return self.help_keys
        names = {"question_mark": "?", "f1": "F1", "escape": "esc", "ctrl+p": "ctrl+p"}
        return " / ".join(names.get(k, k) for k in self.keys.split(",")) if self.keys else "palette"


ACTIONS: tuple[Action, ...] = (
    Action("detect", "d", "detect", "Detect super weights", "probe, prune-and-reprobe, judge the candidates", needs="loaded"),
    Action("name_spike", "n", "name", "Name the selected spike",
           "name the selected layer's spike a super weight (with a label)", needs="probe"),
    Action("toggle_prune", "p", "prune", "Prune / unprune selected", "zero the selected super weight, or put it back",
           needs="selection"),
    Action("scale", "s", "scale", "Scale selected", "multiply the selected super weight by a finite factor",
           needs="selection"),
    Action("restore", "r", "restore", "Restore selected", "put the selected weight back (bit-exact)", needs="selection"),
    Action("prune_findings", "P", "prune all", "Prune every finding",
           "prune every weight judged a super weight or a group member at once (again: restore them)", show=False,
           needs="selection"),
    Action("restore_all", "R", "restore all", "Restore all", "undo every edit, quantization and ablation (bit-exact)",
           needs="loaded"),
    Action("toggle_sa", "a", "SA", "Toggle restore super activation",
           "the paper's prune SW + restore SA, for the selected super weight", needs="selection"),
    Action("toggle_zero_write", "z", "zero write", "Toggle zeroing the MLP write",
           "activation ablation: the selected layer writes nothing on its spike channel (again: undo)", show=False,
           needs="probe"),
    Action("groups", "w", "groups", "Writers judged together",
           "per residual channel: activation left when pruned, ppl pruned / with SA restored / write zeroed, "
           "verdict", show=False, needs="groups"),
    Action("experts", "E", "experts", "Experts of the selected layer",
           "a mixture of experts: the selected layer's routed experts (max |out|, routed tokens); enter names "
           "an expert's spike", show=False, needs="probe"),
    Action("regenerate", "g", "regen", "Regenerate", "greedy generation, baseline vs current", needs="loaded"),
    Action("edit_prompt", "e", "prompt", "Edit prompt", "change the generation prompt", needs="loaded"),
    Action("quantize", "Q", "quant", "Quantization…",
           "presets (RTN, bitsandbytes, W8A8 with/without SA handling): enter applies, a adds as a variant, "
           "f opens the form", needs="loaded"),
    Action("quant_form", "F", "quant form", "Quantization form…",
           "method, bits, grouping and size, clip z, keep SW, activation bits and site, SA handling; "
           "replace or add as a variant", show=False, needs="loaded"),
    Action("full_precision", "", "", "Full precision", "leave quantization (bit-exact)", needs="loaded"),
    Action("compare", "C", "compare", "Compare variants side by side",
           "baseline and up to three quantization variants, one column each (default: per tensor, naive vs "
           "clip z9 + keep SW, at W4 or one bit below a quantized source's)", needs="loaded"),
    Action("scale_sweep", "S", "scale sweep", "Scale sweep of the selected super weight",
           "perplexity and stopword mass for factors 0…3, charted (esc cancels)", show=False, needs="selection"),
    Action("quant_sweep", "B", "block sweep", "Block-size sweep: naive vs SW-aware RTN",
           "RTN by block size, naive vs clip z9 + keep SW with paired intervals, charted (esc cancels); "
           "W4, or one bit below a quantized source's", show=False, needs="loaded"),
    Action("export", "x", "export", "Export snapshot", "JSON + SVG + Markdown into snapshots/", needs="loaded"),
    Action("chart_move(-1)", "h", "◀", "", "previous layer of the spike chart", show=False, help_keys="←/→ or h/l"),
    Action("chart_move(1)", "l", "▶", "", "next layer of the spike chart", show=False, help_keys="←/→ or h/l"),
    Action("table_move(1)", "j", "down", "", "next row of the super weight table", show=False,
           help_keys="j/k or ↑/↓"),
    Action("table_move(-1)", "k", "up", "", "previous row of the super weight table", show=False,
           help_keys="j/k or ↑/↓"),
    Action("toggle_log", "L", "log", "Toggle log scale", "spike chart in log or linear scale", show=False),
    Action("toggle_view", "v", "view", "Switch chart view", "down_proj in/out vs residual stream", show=False),
    Action("cancel", "escape", "cancel", "Cancel running work", "stop detection, generation, a comparison or a sweep",
           show=False, scope="app"),
    Action("next_theme", "t", "theme", "Next theme", "cycle the themes", show=False, scope="app"),
    Action("command_palette", "ctrl+p", "palette", "", "command palette (every action)", show=False, scope="app"),
    Action("help", "question_mark,f1", "help", "Help", "keys and concepts", scope="app"),
    Action("quit", "q", "quit", "Quit", "leave swtui", scope="app"),
)


def bindings(scope: str) -> list[Binding]:
    """The BINDINGS of the app ("app") or of the main screen ("screen"); ctrl+p is Textual's own."""
    return [Binding(a.keys, a.name, a.label, show=a.show) for a in ACTIONS
            if a.keys and a.scope == scope and a.name != "command_palette"]


def palette() -> list[Action]:
    return [a for a in ACTIONS if a.title]


def help_rows() -> list[tuple[str, str]]:
    """(keys, what) for the help screen: actions sharing a help key text share a row."""
    rows: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for a in ACTIONS:
        keys = a.key_text()
        if a.help_keys and keys in seen:
            continue
        if a.help_keys:
            seen[keys] = len(rows)
            what = {"←/→ or h/l": "move along the layers of the spike chart (enter / click selects)",
                    "j/k or ↑/↓": "move in the super weight table"}.get(keys, a.help)
            rows.append((keys, what))
        else:
            rows.append((keys, a.help))
    return rows


def why_not(main, action: Action) -> str | None:
    """None when `action` can run in the state of `main` (the MainScreen), else the reason."""
    need = action.needs
    if need is None:
        return None
    ok = {"loaded": lambda: main.loaded,
          "probe": lambda: bool(main.layer_stats),
          "selection": lambda: bool(main.rows),
          "groups": lambda: bool(main.groups)}[need]()
    return None if ok else NEEDS[need]


def find(method: str) -> Action | None:
    return next((a for a in ACTIONS if a.method == method), None)
