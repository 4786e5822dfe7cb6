"""Data-free super weight detection: probe, take the spike, zero it, probe again.

Rule (configurable): a layer spikes when its max |down_proj output| is at least `ratio` times the
median of that statistic over all layers of the first probe, and at least `min_abs`. Each round
takes the *earliest* spiking layer (a super activation rides the residual stream forward, so later
spikes may be its consequences), names row = output spike channel and col = the input channel
whose term x[t,col]·W[row,col] writes most of the spike at its token t (exact attribution, with
its share reported), zeroes that weight through the ledger and probes again, until no layer
spikes or `max_rounds`. The temporary zeroing is undone at the end. Each candidate is then
probed on the user's prompt and three bundled ones (a super activation is prompt-independent)
and its impact measured. This module never reads the catalog.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field
from typing import Callable

from swtui.core.errors import Cancelled
from swtui.core.probe import ProbeResult, probe_down_proj
from swtui.core.session import Session, SuperWeight

DEFAULT_PROMPT = "Apple Inc. is a worldwide tech company."


@dataclass
class DetectOptions:
    prompt: str = DEFAULT_PROMPT
    ratio: float = 50.0
    min_abs: float = 0.0
    max_rounds: int = 8
    impact: bool = True
    impact_threshold: float = 1.5  # ppl(pruned)/ppl(base) at or above this: a super weight


@dataclass
class Detection:
    probe: ProbeResult
    threshold: float
    candidates: list[SuperWeight] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    stop_reason: str = ""
    options: DetectOptions = field(default_factory=DetectOptions)
    groups: list = field(default_factory=list)  # WriterGroup: candidates writing one channel, together

    @property
    def super_weights(self) -> list[SuperWeight]:
        return [c for c in self.candidates if c.is_super is not False]

    def spike_layers(self, probe: ProbeResult | None = None) -> list[int]:
        probe = probe or self.probe
        return [s.layer for s in probe.layers if s.out_max >= self.threshold]


def run_probe(session: Session, prompt: str, variant: str = "current") -> ProbeResult:
    ids = session.encode(prompt)
    names, ctx = session.variant_runs((variant,))[0]
    with ctx:
        return probe_down_proj(session.model, session.adapter, ids, prompt=prompt, tokens=session.token_strings(ids))


def spike_threshold(probe: ProbeResult, ratio: float, min_abs: float) -> float:
    median = statistics.median(s.out_max for s in probe.layers)
    return max(ratio * median, min_abs)


def attributed_col(stats) -> int:
    """The input channel that writes the output spike: argmax_c |x[t,c]·W[r,c]| at the spike's token
    (exact attribution); the largest |input| only where the weight cannot be read (packed)."""
    return stats.attr_col if stats.attr_col is not None else stats.in_channel


def confirmation_prompts(user_prompt: str, n_bundled: int = 3) -> list[str]:
    """The user's probe prompt plus `n_bundled` bundled prompts of other kinds."""
    from swtui.core.metrics import stopword_prompts

    bundled = [p for p in stopword_prompts() if p != user_prompt][:n_bundled]
    return [user_prompt] + bundled


def confirm_across_prompts(session: Session, detection: "Detection", prompt: str,
                           cancel: threading.Event | None = None) -> None:
    """A super activation is prompt-independent: count, per candidate, the prompts on which its
    layer's largest output is on its row and above the detection threshold."""
    prompts = confirmation_prompts(prompt)
    probes = []
    for text in prompts:
        if cancel is not None and cancel.is_set():
            raise Cancelled("detection cancelled")
        probes.append(run_probe(session, text))
    for cand in detection.candidates:
        cand.prompts_total = len(prompts)
        cand.prompts_spiking = sum(1 for p in probes if p.layers[cand.layer].out_channel == cand.row
                                   and p.layers[cand.layer].out_max >= detection.threshold)


def tensor_zscore(session: Session, layer: int, row: int, col: int) -> float:
    from swtui.core.offload import real_tensor

    site = session.adapter.site(layer)
    w = real_tensor(session.model, site.weight_name, site.down.weight.detach()).float()
    value = session.ledger.pristine_value(layer, row, col)
    std = float(w.std())
    return (value - float(w.mean())) / std if std > 0 else 0.0


def residual_persistence(probe: ProbeResult, layer: int, row: int) -> tuple[int | None, int]:
    """(first layer ≥ `layer` whose residual max is on channel `row`, how many layers it is)."""
    hits = [s.layer for s in probe.layers[layer:] if s.resid_channel == row]
    return (hits[0] if hits else None), len(hits)


@dataclass
class DetectionListener:
    """Streams detection as it happens (the TUI draws each stage at once). All optional."""

    probed: Callable[["Detection"], None] | None = None  # the first probe and threshold are known
    found: Callable[[SuperWeight], None] | None = None  # a candidate, impact not yet measured
    measured: Callable[[SuperWeight], None] | None = None  # a candidate's impact is known


def detect(session: Session, opts: DetectOptions | None = None,
           progress: Callable[[str, float | None], None] | None = None,
           cancel: threading.Event | None = None, listener: DetectionListener | None = None) -> Detection:
    from swtui.core.metrics import perplexity

    opts = opts or DetectOptions()
    progress = progress or (lambda stage, frac: None)
    listener = listener or DetectionListener()
    progress("probing", 0.0)
    first = run_probe(session, opts.prompt)
    result = Detection(probe=first, threshold=spike_threshold(first, opts.ratio, opts.min_abs), options=opts)
    if listener.probed:
        listener.probed(result)
    zeroed: list[tuple[int, int, int]] = []
    exhausted: set[int] = set()
    try:
        probe = first
        for round_no in range(opts.max_rounds):
            if cancel is not None and cancel.is_set():
                raise Cancelled("detection cancelled")
            spikes = [s for s in probe.layers if s.out_max >= result.threshold and s.layer not in exhausted]
            result.rounds.append({"round": round_no, "spikes": [[s.layer, s.out_channel, s.in_channel, s.out_max]
                                                                for s in spikes]})
            # A spike that points at a weight we already zeroed is no longer one weight's doing:
            # that layer is exhausted; look further.
            while spikes and (spikes[0].layer, spikes[0].out_channel, attributed_col(spikes[0])) in zeroed:
                exhausted.add(spikes.pop(0).layer)
            if not spikes:
                result.stop_reason = "no spike left above the threshold"
                break
            s = spikes[0]
            key = (s.layer, s.out_channel, attributed_col(s))
            if session.ledger.edit(key) is not None:
                exhausted.add(s.layer)
                continue
            first_layer, persist = residual_persistence(probe, s.layer, s.out_channel)
            cand = SuperWeight(
                layer=s.layer, row=s.out_channel, col=key[2],
                value=session.ledger.pristine_value(*key), source="detected",
                zscore=tensor_zscore(session, *key), in_act=s.in_max, out_act=s.out_max,
                sa_magnitude=s.out_max, first_layer=first_layer, persist_layers=persist, share=s.attr_share,
            )
            result.candidates.append(cand)
            if listener.found:
                listener.found(cand)
            session.ledger.prune(*key)
            zeroed.append(key)
            progress(f"round {round_no + 1}: found layer {s.layer} [{s.out_channel}, {s.in_channel}]",
                     (round_no + 1) / (opts.max_rounds + 1))
            probe = run_probe(session, opts.prompt)
        else:
            result.stop_reason = f"stopped after {opts.max_rounds} rounds"
    finally:
        for key in reversed(zeroed):
            session.ledger.restore(*key)

    if result.candidates:
        confirm_across_prompts(session, result, opts.prompt, cancel)
    if opts.impact and result.candidates:
        progress("measuring impact (perplexity)", None)
        base = perplexity(session, variants=("current",))["current"]
        for i, cand in enumerate(result.candidates):
            if cancel is not None and cancel.is_set():
                raise Cancelled("detection cancelled")
            session.ledger.prune(*cand.key)
            try:
                pruned = perplexity(session, variants=("current",))["current"]
            finally:
                session.ledger.restore(*cand.key)
            cand.ppl_base, cand.ppl_pruned = base, pruned
            cand.is_super = pruned / base >= opts.impact_threshold
            if listener.measured:
                listener.measured(cand)
            progress("measuring impact (perplexity)", (i + 1) / len(result.candidates))
    if len(result.candidates) > 1:
        from swtui.core.groups import judge_groups

        progress("judging writers of one channel together", None)
        result.groups = judge_groups(session, result.candidates, opts.prompt,
                                     opts.impact_threshold if opts.impact else None, cancel)
    progress("done", 1.0)
    return result


def adopt(session: Session, detection: Detection) -> None:
    """Record detected candidates as the session's named super weights (keeping user labels)."""
    for cand in detection.candidates:
        adopt_candidate(session, cand)


def adopt_candidate(session: Session, cand: SuperWeight) -> None:
    existing = session.find_super_weight(cand.key)
    if existing is None:
        session.super_weights.append(cand)
    elif existing is not cand:
        label, source = existing.label, existing.source
        existing.__dict__.update(cand.__dict__)
        existing.label = label or cand.label
        existing.source = source if source == "user" else cand.source
