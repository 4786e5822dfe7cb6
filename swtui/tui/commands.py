"""Command palette provider: every action of the app, searchable."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

ACTIONS = [
    ("Detect super weights", "detect", "probe, prune-and-reprobe, measure impact (d)"),
    ("Regenerate", "regenerate", "greedy generation, baseline vs current (g)"),
    ("Edit prompt", "edit_prompt", "change the generation prompt (e)"),
    ("Name the selected spike", "name_spike", "add the selected layer's spike as a super weight (n)"),
    ("Prune / unprune selected", "toggle_prune", "zero the selected super weight (p)"),
    ("Scale selected", "scale", "multiply the selected super weight by a factor (s)"),
    ("Restore selected", "restore", "put the selected weight back (r)"),
    ("Restore all", "restore_all", "undo every edit, bit-exact (R)"),
    ("Toggle restore super activation", "toggle_sa", "the paper's prune SW + restore SA (a)"),
    ("Toggle zeroing the MLP write", "toggle_zero_write",
     "activation ablation: the selected layer writes nothing on its spike channel (z)"),
    ("Writers judged together", "groups",
     "per residual channel: the candidates pruned together, with SA restored, the write zeroed (w)"),
    ("Quantization…", "quantize", "RTN / bitsandbytes, with super outliers held out or not (Q)"),
    ("Full precision", "full_precision", "leave quantization (bit-exact)"),
    ("Quantization form…", "quant_form", "method, bits, grouping, clip z, SW/SA handling; replace or add a variant (F)"),
    ("Compare variants side by side", "compare", "baseline and up to three quantization variants (C)"),
    ("Scale sweep of the selected super weight", "scale_sweep", "perplexity for factors 0…3 (S)"),
    ("Block-size sweep: naive vs SW-aware RTN", "quant_sweep", "the paper's comparison by block size (B)"),
    ("Export snapshot", "export", "JSON + SVG + Markdown into snapshots/ (x)"),
    ("Toggle log scale", "toggle_log", "spike chart in log or linear scale (L)"),
    ("Switch chart view", "toggle_view", "down_proj in/out vs residual stream (v)"),
    ("Cancel running work", "cancel", "stop generation or detection (esc)"),
    ("Next theme", "next_theme", "cycle the themes (t)"),
    ("Help", "help", "keys and concepts (?)"),
    ("Quit", "quit", "leave swtui (q)"),
]


class SwtuiCommands(Provider):
    async def discover(self) -> Hits:
        for title, action, help_text in ACTIONS:
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
