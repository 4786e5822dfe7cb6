"""Perplexity and stopword probability mass, for one or both variants, and `measure` (with the
greedy generation of `swtui.core.evidence.generation`): what measuring a model state means.

Every metric takes `variants` ("base", "current"); `Session.run_variants` decides whether they run
as rows of one batch or as separate passes.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from swtui.core.errors import UserInputError, check_cancel
from swtui.core.evidence import generation
from swtui.core.evidence.generation import TokenFn
from swtui.core.evidence.records import Metrics, StopwordReport, TokenShift  # noqa: F401 - re-exported
from swtui.core.edits.session import VARIANTS, Session


def bundled_text(name: str) -> str:
    return resources.files("swtui.core").joinpath("data", name).read_text(encoding="utf-8")


def eval_text(path: str | None = None) -> str:
    if path is None:
        return bundled_text("eval.txt")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"--eval-file {path}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    if not text.strip():
        raise UserInputError(f"--eval-file {path} is empty")
    return text


def stopword_prompts() -> list[str]:
    return [line.strip() for line in bundled_text("prompts.txt").splitlines() if line.strip()]


def stopword_list() -> list[str]:
    return [w.strip() for w in bundled_text("stopwords.txt").splitlines() if w.strip() and not w.startswith("#")]


# -- perplexity ------------------------------------------------------------------------------
def perplexity(session: Session, text: str | None = None, variants=VARIANTS, window: int = 512,
               runs: list | None = None) -> dict[str, float]:
    """exp(mean next-token NLL) over `text` in non-overlapping windows, per variant (see `token_losses`)."""
    from swtui.core.evidence.stats import perplexity_of

    return {name: perplexity_of(losses)
            for name, losses in token_losses(session, text, variants, window, runs).items()}


#: target tokens of the bundled corpus's held-out documents that a measurement (the TUI's figures,
#: `ablate`, `quant`, the sweeps) evaluates by default: text no verdict was judged on
MEASURE_TOKENS = 1008


def measurement_windows(session: Session, max_tokens: int | None = None) -> list:
    """The default measurement's windows: the bundled corpus's held-out split, first MEASURE_TOKENS."""
    from swtui.core.evidence.corpus import build

    corpus = build(session.tokenizer, split="held_out", context_length=session.context_length)
    return [w.ids for w in corpus.first(max_tokens or MEASURE_TOKENS).windows]


def _windows(session: Session, text: str | None, window: int, max_tokens: int | None = None) -> list:
    import torch

    if text is None:
        return measurement_windows(session, max_tokens)
    from swtui.core.evidence.corpus import bos_id

    ids = session.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    bos = bos_id(session.tokenizer)
    if max_tokens is not None:  # a token budget: the first tokens of the text, `max_tokens` targets
        ids = ids[:, :max_tokens if bos is not None else max_tokens + 1]
    window = min(window, session.context_length)
    body = window - 1 if bos is not None else window
    chunks = []
    for i in range(0, ids.shape[-1], body):
        chunk = ids[:, i:i + body]
        if bos is not None:
            chunk = torch.cat([torch.tensor([[bos]]), chunk], dim=1)
        if chunk.shape[-1] > 1:
            chunks.append(chunk)
    if not chunks:
        raise UserInputError("the evaluation text is too short (needs at least two tokens)")
    return chunks


def token_losses(session: Session, text: str | None = None, variants=VARIANTS, window: int = 512,
                 runs: list | None = None, max_tokens: int | None = None) -> dict:
    """Per-token next-token NLL over `text`, per variant: {name: 1-D float64 CPU tensor}, the
    same tokens in the same order for every variant (so arms pair up, see `swtui.core.evidence.stats`).

    `runs` ([(names, context)], e.g. `scenarios.scenario_runs`) replaces the variants. The text is
    cut into non-overlapping windows; every window starts with BOS where the tokenizer uses one
    (models such as Gemma degrade without it); BOS itself is never a target.
    """
    import torch

    chunks = [c.to(session.device) for c in _windows(session, text, window, max_tokens)]
    if session.model not in _PLAIN_HEAD:  # decided once, on the pristine model, outside any variant's hooks
        with session.ledger.pristine_weights():
            _plain_head(session.model)

    def run(n: int) -> list:
        losses: list[list] = [[] for _ in range(n)]
        with torch.no_grad():
            for chunk in chunks:
                target = chunk[0, 1:]
                for start, logits in _logit_slices(session.model, chunk.expand(n, -1)):
                    tgt = target[start:start + logits.shape[1]]
                    for row in range(n):  # one row at a time keeps the log-softmax temporary small
                        loss = torch.nn.functional.cross_entropy(logits[row, :tgt.shape[0]].float(), tgt,
                                                                 reduction="none")
                        losses[row].append(loss.double().cpu())
                    del logits
        return [torch.cat(parts) for parts in losses]

    if runs is None:
        return session.run_variants(run, variants)
    out: dict = {}
    for names, ctx in runs:
        with ctx:
            out.update(zip(names, run(len(names))))
    return out


def window_losses(session: Session, ids, n: int = 1) -> list:
    """Per-token next-token NLL of windows `ids` ([n, T], or [1, T] repeated on n rows; BOS first
    where used: never a target), one forward, each row under whatever hooks are installed:
    [n × float64 CPU [T−1]]."""
    import torch

    check_head(session)
    batch = ids.expand(n, -1) if ids.shape[0] == 1 else ids
    losses: list[list] = [[] for _ in range(n)]
    with torch.no_grad():
        for start, logits in _logit_slices(session.model, batch):
            for row in range(n):
                tgt = batch[row, 1 + start:1 + start + logits.shape[1]]
                loss = torch.nn.functional.cross_entropy(logits[row, :tgt.shape[0]].float(), tgt, reduction="none")
                losses[row].append(loss.double().cpu())
            del logits
    return [torch.cat(parts) for parts in losses]


def check_head(session: Session) -> None:
    """Decide once, on the pristine model and outside any hooks, whether the LM head can be applied
    to slices of the decoder output (`_plain_head`); call before installing hooks."""
    if session.model not in _PLAIN_HEAD:
        with session.ledger.pristine_weights():
            _plain_head(session.model)


_PLAIN_HEAD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _plain_head(model) -> bool:
    """True when logits == lm_head(decoder output) for this model, checked once on 4 tokens.

    Whatever a family does after the head (Gemma's soft-capping, Granite's `logits_scaling`, a
    logit scale) makes this False, and such models get an ordinary full forward instead.
    """
    import torch

    if model in _PLAIN_HEAD:
        return _PLAIN_HEAD[model]
    head = model.get_output_embeddings()
    base = getattr(model, "base_model", None)
    plain = head is not None and base is not None and base is not model
    if plain:
        device = next(model.parameters()).device
        ids = torch.arange(4, device=device)[None] % max(2, model.config.vocab_size)
        with torch.no_grad():
            full = model(input_ids=ids, use_cache=False).logits.float()
            split = head(base(input_ids=ids, use_cache=False)[0]).float()
        plain = full.shape == split.shape and bool(torch.allclose(full, split, rtol=1e-3, atol=1e-3))
    _PLAIN_HEAD[model] = plain
    return plain


def _logit_slices(model, batch, size: int = 128):
    """(start, logits[:, start:start+size]) for predicting tokens 1..T-1 of `batch`.

    The decoder runs once; the LM head is applied to `size` positions at a time, so the full
    [batch, T, vocab] logits never exist at once. Models whose head does more than a linear map
    get one ordinary forward instead (see `_plain_head`).
    """
    if not _plain_head(model):
        yield 0, model(input_ids=batch, use_cache=False).logits[:, :-1]
        return
    head = model.get_output_embeddings()
    hidden = model.base_model(input_ids=batch, use_cache=False)[0]
    last = batch.shape[1] - 1  # the final position predicts nothing inside the window
    for start in range(0, last, size):
        yield start, head(hidden[:, start:min(start + size, last)])


# -- stopwords -------------------------------------------------------------------------------
def stopword_ids(tokenizer) -> dict[int, str]:
    """Token ids that are a whole stopword (with or without a leading space / capital)."""
    ids: dict[int, str] = {}
    for word in stopword_list():
        for form in {word, " " + word, word.capitalize(), " " + word.capitalize()}:
            enc = tokenizer.encode(form, add_special_tokens=False)
            if len(enc) == 1:
                ids.setdefault(enc[0], form)
    return ids


def stopword_mass(session: Session, prompts: list[str] | None = None, variants=VARIANTS, top: int = 8) -> StopwordReport:
    """Mean next-token probability mass on stopwords, per variant: over every position of the
    measurement windows (hundreds of corpus contexts; `prompts`: the last position of each prompt
    instead), with the change current − base and its cluster-bootstrap interval over windows."""
    if prompts is None:
        return corpus_pass(session, variants, top=top)[1]
    import torch

    sw = stopword_ids(session.tokenizer)
    sw_index = torch.tensor(sorted(sw), dtype=torch.long)

    def run(n: int):
        total = None
        with torch.no_grad():
            for prompt in prompts:
                ids = session.encode(prompt).expand(n, -1)
                logits = session.model(input_ids=ids, use_cache=False).logits[:, -1].float()
                probs = torch.softmax(logits, dim=-1).cpu()
                total = probs if total is None else total + probs
        return list(total / len(prompts))

    probs = session.run_variants(run, variants)
    return _report(session, {v: float(p[sw_index].sum()) for v, p in probs.items()}, probs, sw_index, top)


def corpus_pass(session: Session, variants=VARIANTS, windows: list | None = None, top: int = 8):
    """One pass over the measurement windows per variant: ({variant: per-token losses},
    StopwordReport over every position as a context)."""
    windows = [w.to(session.device) for w in (windows or measurement_windows(session))]
    sw_index = stopword_index(session)
    check_head(session)

    def run(n: int):
        per = [window_stats(session, ids.expand(n, -1), sw_index) for ids in windows]
        return [[p[row] for p in per] for row in range(n)]

    return corpus_results(session, session.run_variants(run, variants), sw_index, top)


def stopword_index(session: Session):
    import torch

    return torch.tensor(sorted(stopword_ids(session.tokenizer)), dtype=torch.long)


def window_stats(session: Session, batch, sw_index) -> list:
    """One forward of a measurement window `batch` ([n, T]), per row: (per-token losses, the
    stopword mass at each position, [the summed probabilities of each LM-head slice])."""
    import torch

    n = batch.shape[0]
    losses: list[list] = [[] for _ in range(n)]
    masses: list[list] = [[] for _ in range(n)]
    sums: list[list] = [[] for _ in range(n)]
    with torch.no_grad():
        for start, logits in _logit_slices(session.model, batch):
            for row in range(n):
                lg = logits[row].float()
                tgt = batch[row, 1 + start:1 + start + lg.shape[0]]
                losses[row].append(torch.nn.functional.cross_entropy(lg, tgt, reduction="none").double().cpu())
                probs = torch.softmax(lg, dim=-1).cpu()
                masses[row].append(probs[:, sw_index].sum(dim=1).double())
                sums[row].append(probs.sum(dim=0).double())
            del logits
    return [(torch.cat(losses[row]), torch.cat(masses[row]), sums[row]) for row in range(n)]


def corpus_results(session: Session, out: dict, sw_index, top: int = 8):
    """({variant: per-token losses}, StopwordReport) from {variant: [window_stats row, per window]}."""
    import torch

    from swtui.core.evidence.stats import Difference

    merged = {}
    for v, per in out.items():
        total = None
        for _, _, sums in per:  # in window order, slice by slice: the running sum of one pass
            for s in sums:
                total = s if total is None else total + s
        merged[v] = (torch.cat([p[0] for p in per]), [p[1] for p in per], total)
    positions = sum(int(p[0].numel()) for p in next(iter(out.values())))
    probs = {v: o[2] / positions for v, o in merged.items()}
    mass = {v: float(torch.cat(o[1]).mean()) for v, o in merged.items()}
    change = None
    if "base" in merged and "current" in merged:
        change = Difference.of_windows(merged["base"][1], merged["current"][1])
    report = _report(session, mass, probs, sw_index, top, change, positions)
    return {v: o[0] for v, o in merged.items()}, report


def _report(session, mass: dict, probs: dict, sw_index, top: int, change=None, contexts: int = 0) -> StopwordReport:
    import torch

    movers: dict[str, list[TokenShift]] = {"stopwords": [], "other": []}
    if "base" in probs and "current" in probs:
        base, cur = probs["base"].float(), probs["current"].float()
        is_sw = torch.zeros_like(base, dtype=torch.bool)
        is_sw[sw_index] = True
        score = torch.maximum(base, cur)
        for mask, target in ((is_sw, movers["stopwords"]), (~is_sw, movers["other"])):
            ranked = torch.where(mask, score, torch.full_like(score, -1.0)).topk(top).indices.tolist()
            for tid in ranked:
                target.append(TokenShift(session.tokenizer.decode([tid]), float(base[tid]), float(cur[tid])))
    return StopwordReport(mass, tuple(movers["stopwords"]), tuple(movers["other"]), change, contexts)


# -- one measurement ---------------------------------------------------------------------------
@dataclass
class Measurement:
    """Every variant's `Metrics`, and the stopword report (which tokens moved, base vs current)."""
    metrics: dict[str, Metrics]
    stopwords: StopwordReport

    def __getitem__(self, variant: str) -> Metrics:
        return self.metrics[variant]


def measure(session: Session, prompt: str | None = None, max_new_tokens: int = 24, text: str | None = None,
            variants=VARIANTS, cancel: threading.Event | None = None, on_token: TokenFn | None = None,
            on_generation: Callable[[dict[str, str]], None] | None = None,
            on_stopwords: Callable[[StopwordReport], None] | None = None) -> Measurement:
    """Measure each variant: a greedy generation of `prompt` (when given, streamed through
    `on_token`), then the stopword mass and the perplexity in one pass over the same contexts: every
    position of `text`'s windows, or of the bundled corpus's held-out windows when None.

    The one place that says what "measuring a model state" means: the TUI's refresh, the
    comparison's variants and the `ablate`, `quant` and `open` commands all call it. `on_generation`
    and `on_stopwords` report the parts as they are done; `cancel` stops between and within them.
    """
    def check() -> None:
        check_cancel(cancel, "measurement cancelled")

    texts: dict[str, str] = {}
    if prompt is not None:
        texts = generation.generate(session, prompt, max_new_tokens, variants, cancel=cancel, on_token=on_token)
        if on_generation is not None:
            on_generation(texts)
    check()
    from swtui.core.evidence.stats import perplexity_of

    # one pass: the windows' losses and every position's stopword mass (the held-out corpus windows,
    # or `text`'s: a text the user chose is the text every figure of the measurement is about)
    windows = None if text is None else _windows(session, text, 512)
    losses, report = corpus_pass(session, variants, windows=windows)
    if on_stopwords is not None:
        on_stopwords(report)
    ppl = {v: perplexity_of(losses[v]) for v in variants}
    return Measurement({v: Metrics(ppl[v], report.mass[v], texts.get(v)) for v in variants}, report)
