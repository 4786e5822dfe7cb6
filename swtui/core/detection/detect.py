"""Data-free super weight detection: probe, take the spike, zero it, probe again.

The spike rule holds across families with its defaults (README "Detection"). Each layer's max
|down_proj input| and max |down_proj output| are scored robustly against the same statistic over
all layers of the first probe, in log space:

    z = (ln s − median ln s) / max(1.4826 · MAD(ln s), SPREAD_FLOOR)

A layer spikes when both its input and its output score at least `z` (default 2.5) and the two
spikes meet at the same token (a super weight meets its outlier input there); `min_abs` bounds the
output from below. `ratio` overrides the output score with the older fixed rule (out ≥ ratio ×
median); `any_token` drops the same-token requirement. Raw outputs are scored, not the residual
write: behind a post-FFN norm (Gemma-2/3, OLMo-2) the write is capped by the norm and is largest
on the norm's heavy channel in every layer, so it is reported as evidence, not used to rank.

Each round takes the *earliest* spiking layer (a super activation rides the residual stream
forward, so later spikes may be its consequences), names row = output spike channel and col = the
input channel whose term x[t,col]·W[row,col] writes most of the spike at its token t (exact
attribution, with its share reported), zeroes that weight through the ledger and probes again,
until no layer spikes or `max_rounds`. The temporary zeroing is undone at the end. The candidates
are then probed on the user's prompt and three bundled ones (a super activation is
prompt-independent) and the impact check decides (see `swtui.core.detection.groups` for the verdicts).
This module never reads the catalog.
"""

from __future__ import annotations

import math
import statistics
import threading
from dataclasses import dataclass, field
from typing import Callable

from swtui.core.defaults import PROBE_PROMPT
from swtui.core.errors import check_cancel
from swtui.core.detection.probe import ProbeResult, probe_down_proj
from swtui.core.edits.session import Session, SuperWeight

DEFAULT_PROMPT = PROBE_PROMPT


#: the smallest spread (natural-log units) a score divides by: with a spike score of 2.5, a layer
#: must be at least e^(2.5·0.5) ≈ 3.5× the median even when every other layer is alike
SPREAD_FLOOR = 0.5
#: the share of layers (the lowest) that the median and spread are taken over: up to a quarter of
#: the layers may be outliers without hiding each other
TRIM = 0.75
#: remove-and-repeat leaves a layer once its output spike is below this share of its first one
EXHAUSTED = 0.1
#: and takes only spikes of at least this share of the largest output of the unedited model's first
#: round(0.75 × layers) layers (the super-experts rule's "above 0.1× the overall max" over the layers
#: it ranks, Su et al. 2025, `experts.included_layers`): a super activation is the model's largest
#: early output, the small spikes of other layers are their ordinary business, and a huge output of
#: a last layer (a model's final MLPs often write its largest values) must not hide it
SIGNIFICANT = 0.1


#: the verdicts' default token budget: 64 windows of 64 tokens of the corpus's verdict documents (an
#: arm that decides earlier stops earlier)
EVAL_BUDGET = 64 * 63


@dataclass
class DetectOptions:
    prompt: str = DEFAULT_PROMPT
    z: float = 2.5  # robust log-space score both the input and the output spike must reach
    ratio: float | None = None  # override: out_max ≥ ratio × median instead of the output score
    min_abs: float = 0.0
    any_token: bool = False  # True: the input and output spikes need not meet at one token
    max_rounds: int = 8
    impact: bool = True
    impact_threshold: float = 1.5  # ppl(pruned)/ppl(base) at or above this: a super weight
    together: bool = True  # also judge groups and the activation (False: each candidate alone only)
    channels: bool = True  # look for massive residual channels and judge their writers
    eval_text: str | None = None  # the verdicts' text (None: the bundled WikiText-2 excerpt; see `corpus`)
    eval_tokens: int | None = None  # a token budget: judge on the corpus's first N tokens (None: all of its split)
    sequential: bool = True  # arms stop at the first look that decides (False: the whole budget, one look)


@dataclass(frozen=True)
class LogScale:
    """Median and robust spread of ln(statistic) over layers."""

    median: float  # of the lowest TRIM share of the layers
    spread: float
    full_median: float = 0.0  # of every layer (what `--ratio R × median` means)

    @classmethod
    def of(cls, values) -> "LogScale":
        """Median and spread of the lower TRIM share of the layers: spikes are high, and a quarter of
        the layers spiking must not inflate the spread they are scored against."""
        every = sorted(math.log(max(v, 1e-30)) for v in values)
        logs = every[:max(1, math.ceil(TRIM * len(every)))]
        med = statistics.median(logs)
        mad = statistics.median(abs(v - med) for v in logs)
        return cls(med, max(1.4826 * mad, SPREAD_FLOOR), statistics.median(every))

    def score(self, value: float) -> float:
        return (math.log(max(value, 1e-30)) - self.median) / self.spread

    def level(self, z: float) -> float:
        """The value whose score is z."""
        return math.exp(self.median + z * self.spread)


@dataclass(frozen=True)
class SpikeRule:
    """The spike rule, fixed by the first probe (thresholds stay put while weights are zeroed)."""

    out_scale: LogScale
    in_scale: LogScale
    threshold: float  # on max |down_proj output|
    in_threshold: float  # on max |down_proj input|
    same_token: bool
    text: str

    @classmethod
    def from_probe(cls, probe: ProbeResult, opts: "DetectOptions") -> "SpikeRule":
        out_s = LogScale.of(s.out_max for s in probe.layers)
        in_s = LogScale.of(s.in_max for s in probe.layers)
        if opts.ratio is not None:
            out_thr = opts.ratio * math.exp(out_s.full_median)
            out_text = f"out ≥ {opts.ratio:g} × median"
        else:
            out_thr = out_s.level(opts.z)
            out_text = f"z(out) ≥ {opts.z:g}"
        out_thr = max(out_thr, opts.min_abs)
        if opts.min_abs:
            out_text += f", out ≥ {opts.min_abs:g}"
        text = (f"{out_text}, z(in) ≥ {opts.z:g}" + ("" if opts.any_token else ", same token")
                + f"; z = (ln s − median ln s) / max(1.4826·MAD, {SPREAD_FLOOR:g}) over layers")
        return cls(out_s, in_s, out_thr, in_s.level(opts.z), not opts.any_token, text)

    def spikes(self, probe: ProbeResult) -> list:
        return [s for s in probe.layers if self.is_spike(s)]

    def is_spike(self, s) -> bool:
        return (s.out_max >= self.threshold and s.in_max >= self.in_threshold
                and (not self.same_token or s.in_token == s.out_token))

    def scores(self, s) -> tuple[float, float]:
        """(z of the input spike, z of the output spike) of one layer."""
        return self.in_scale.score(s.in_max), self.out_scale.score(s.out_max)


@dataclass
class Detection:
    probe: ProbeResult
    rule: SpikeRule
    candidates: list[SuperWeight] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    stop_reason: str = ""
    options: DetectOptions = field(default_factory=DetectOptions)
    groups: list = field(default_factory=list)  # WriterGroup: a massive channel or a candidate's row
    channels: list = field(default_factory=list)  # channels.MassiveChannel, on the unedited probe
    impact: object = None  # impact.Impact, when candidates were judged
    super_experts: dict | None = None  # fused experts: `experts.judge_super_experts` (None: a dense model)
    expert_profile: object = None  # fused experts: `expert_profile.ExpertProfile` on calibration text
    significance_floor: float = 0.0  # remove-and-repeat's floor on a spike's output (SIGNIFICANT)

    @property
    def threshold(self) -> float:
        """The output threshold (the chart's line)."""
        return self.rule.threshold

    @property
    def super_weights(self) -> list[SuperWeight]:
        """Candidates judged a super weight or a group member (all of them when not judged)."""
        from swtui.core.verdicts import is_super_or_member

        return [c for c in self.candidates if is_super_or_member(c)]

    def spike_layers(self, probe: ProbeResult | None = None) -> list[int]:
        return [s.layer for s in self.rule.spikes(probe or self.probe)]


def run_probe(session: Session, prompt: str, variant: str = "current") -> ProbeResult:
    ids = session.encode(prompt)
    names, ctx = session.variant_runs((variant,))[0]
    with ctx:
        return probe_down_proj(session.model, session.adapter, ids, prompt=prompt, tokens=session.token_strings(ids))


def attributed_col(stats) -> int:
    """The input channel that writes the output spike: argmax_c |x[t,c]·W[r,c]| at the spike's token
    (exact attribution); the largest |input| only where the weight cannot be read (packed)."""
    return stats.attr_col if stats.attr_col is not None else stats.in_channel


def confirmation_prompts(user_prompt: str, n_bundled: int = 3) -> list[str]:
    """The user's probe prompt plus `n_bundled` bundled prompts of other kinds."""
    from swtui.core.evidence.metrics import stopword_prompts

    bundled = [p for p in stopword_prompts() if p != user_prompt][:n_bundled]
    return [user_prompt] + bundled


def confirm_across_prompts(session: Session, detection: "Detection", prompt: str,
                           cancel: threading.Event | None = None) -> None:
    """A super activation is prompt-independent: count, per candidate, the prompts on which its
    layer spikes (the detection's rule) with the largest output on its row."""
    from swtui.core.detection.stream_probes import probe_prompts

    prompts = confirmation_prompts(prompt)
    probes = probe_prompts(session, prompts, cancel=cancel)  # streamed: one pass for all of them
    for cand in detection.candidates:
        cand.prompts_total = len(prompts)
        cand.prompts_spiking = sum(1 for p in probes if p.layers[cand.layer].out_channel == cand.row
                                   and p.layers[cand.layer].expert == cand.expert
                                   and detection.rule.is_spike(p.layers[cand.layer]))


def spike_key(s) -> tuple:
    """The weight a layer's spike points at: (layer, row, col[, expert])."""
    from swtui.core.edits.keys import make_key

    return make_key(s.layer, s.out_channel, attributed_col(s), s.expert)


def tensor_zscore(session: Session, layer: int, row: int, col: int, expert: int | None = None) -> float:
    """The weight's z-score in its tensor (a fused expert: that expert's down projection)."""
    from swtui.core.model.offload import real_tensor

    site = session.adapter.site(layer)
    w = real_tensor(session.model, site.weight_name, site.weight.detach()).float()
    if expert is not None:
        w = w[expert]
    value = session.ledger.pristine_value(layer, row, col, expert)
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

    opts = opts or DetectOptions()
    progress = progress or (lambda stage, frac: None)
    listener = listener or DetectionListener()
    progress("probing", 0.0)
    first = run_probe(session, opts.prompt)
    result = Detection(probe=first, rule=SpikeRule.from_probe(first, opts), options=opts)
    if listener.probed:
        listener.probed(result)
    if opts.channels:
        from swtui.core.detection.channels import find_massive

        result.channels = find_massive(session, opts.prompt)
    zeroed: list[tuple[int, int, int]] = []
    exhausted: set[int] = set()
    original = {s.layer: s.out_max for s in result.rule.spikes(first)}  # the unedited model's spikes
    result.significance_floor = SIGNIFICANT * significance_reference(first)
    try:
        probe = first
        for round_no in range(opts.max_rounds):
            check_cancel(cancel, "detection cancelled")
            # Later rounds dig only into layers that spiked in the unedited model, and only while
            # a tenth of that layer's original spike is left: a model broken by the zeroing spikes
            # in new places, and what is left of a spent layer is its ordinary business.
            spikes = [s for s in result.rule.spikes(probe) if s.layer not in exhausted and s.layer in original
                      and s.out_max >= EXHAUSTED * original[s.layer] and s.out_max >= result.significance_floor]
            result.rounds.append({"round": round_no, "spikes": [[s.layer, s.out_channel, s.in_channel, s.out_max]
                                                                for s in spikes]})
            # A spike that points at a weight we already zeroed is no longer one weight's doing:
            # that layer is exhausted; look further.
            while spikes and spike_key(spikes[0]) in zeroed:
                exhausted.add(spikes.pop(0).layer)
            if not spikes:
                result.stop_reason = "no spike left above the threshold"
                break
            s = spikes[0]
            key = spike_key(s)
            if session.ledger.edit(key) is not None:
                exhausted.add(s.layer)
                continue
            first_layer, persist = residual_persistence(probe, s.layer, s.out_channel)
            z_in, z_out = result.rule.scores(s)
            cand = SuperWeight(
                layer=s.layer, row=s.out_channel, col=key[2],
                value=session.ledger.pristine_value(*key), source="detected",
                zscore=tensor_zscore(session, *key), in_act=s.in_max, out_act=s.out_max,
                sa_magnitude=s.out_max, first_layer=first_layer, persist_layers=persist, share=s.attr_share,
                z_in=z_in, z_out=z_out, write=s.write_value, norm_gain=s.norm_gain, expert=s.expert,
            )
            result.candidates.append(cand)
            if listener.found:
                listener.found(cand)
            session.ledger.prune(*key)
            zeroed.append(key)
            progress(f"round {round_no + 1}: found layer {s.layer} [{s.out_channel}, {s.in_channel}]"
                     + ("" if s.expert is None else f" of expert {s.expert}"),
                     (round_no + 1) / (opts.max_rounds + 1))
            probe = run_probe(session, opts.prompt)
        else:
            result.stop_reason = f"stopped after {opts.max_rounds} rounds"
    finally:
        for key in reversed(zeroed):
            session.ledger.restore(*key)

    if session.adapter.is_moe:  # on the model as it is (remove-and-repeat's zeroing undone)
        from swtui.core.detection.expert_profile import profile_experts

        progress("profiling experts on calibration text", None)
        result.expert_profile = profile_experts(session, opts.eval_text, cancel=cancel)
    for cand in writer_candidates(session, result):
        result.candidates.append(cand)
        if listener.found:
            listener.found(cand)
    if result.candidates:
        confirm_across_prompts(session, result, opts.prompt, cancel)
    runner = None
    if result.candidates or result.channels:
        from swtui.core.detection.impact import judge

        progress("measuring impact (perplexity)" if opts.impact else "judging writers of one channel", None)
        corpus = evaluation_corpus(session, opts) if opts.impact else None
        impact = judge(session, result.candidates, opts.prompt, opts.impact_threshold if opts.impact else None,
                       corpus, cancel, listener.measured, lambda frac: progress("measuring impact (perplexity)", frac),
                       together=opts.together, channels=result.channels if opts.together else (),
                       extra_decisions=_expert_decisions(result), sequential=opts.sequential)
        result.groups, result.impact = impact.groups, impact
        runner = impact.runner
    if result.expert_profile is not None:
        from swtui.core.detection.expert_scan import judge_in_scan

        judge_in_scan(session, result, lambda: evaluation_corpus(session, opts), progress, cancel, runner)
    progress("done", 1.0)
    return result


def evaluation_corpus(session: Session, opts: DetectOptions):
    """The windows verdicts rest on: the corpus's verdict split, within the token budget."""
    from swtui.core.evidence.corpus import build

    corpus = build(session.tokenizer, opts.eval_text, context_length=session.context_length)
    return corpus.first(opts.eval_tokens or EVAL_BUDGET)


def _expert_decisions(result: Detection) -> int:
    """How many super-expert claims the same scan will judge (they share the family-wise error)."""
    if result.expert_profile is None or not result.options.impact:
        return 0
    from swtui.core.detection.expert_scan import expert_decisions

    return expert_decisions(result.expert_profile)


def significance_reference(probe: ProbeResult) -> float:
    """The largest down_proj output of the probe's first round(0.75 × layers) layers (SIGNIFICANT)."""
    from swtui.core.detection.experts import included_layers

    return max(s.out_max for s in probe.layers[:max(1, included_layers(len(probe.layers)))])


def writer_candidates(session: Session, detection: Detection) -> list[SuperWeight]:
    """The carrier weights of the massive channels that remove-and-repeat did not find: super
    weights are looked for among a channel's writers too."""
    have = {c.key for c in detection.candidates}
    found = []
    for m in detection.channels:
        for w in m.carriers:
            if w.key is None or w.key in have or session.ledger.edit(w.key) is not None:
                continue
            have.add(w.key)
            found.append(SuperWeight(
                layer=w.layer, row=w.row, col=w.col, value=session.ledger.pristine_value(*w.key), source="writer",
                zscore=tensor_zscore(session, *w.key), first_layer=m.first_layer, persist_layers=m.persist_layers,
                share=w.weight_share, write=w.write, role=w.role))
    return found


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
