"""The evaluation corpus: whole documents cut into windows, the unit every interval resamples.

Verdicts rest on per-token losses over a real language-modelling text: by default an excerpt of
the WikiText-2 (raw) test split bundled in `data/wikitext2/` (its licence and attribution beside
it), several whole articles. Each document is tokenized on its own and cut into non-overlapping
windows of `window` tokens (BOS in front where the tokenizer uses one; BOS is never a target); a
document's tail shorter than a whole window is dropped (every window has the same length, so
windows batch as rows of one forward). Windows are then ordered round-robin over
the documents, so the first look of the evaluation plan already spans several articles.

The corpus is split in two disjoint halves of its documents: `verdicts` (the impact check's
windows, every detection verdict) and `held_out` (text no verdict saw: quantization scores its
arms there, so keep-SW's choice of what to hold out is never scored on the text it was chosen
on). `--eval-file FILE` replaces the bundled text (documents split on WikiText headings, or the
whole file as one); the old short text stays as `builtin:short`, a fast option.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from swtui.core.errors import UserInputError

#: tokens per window (BOS included where used): the cluster the bootstrap resamples
WINDOW = 64
WIKITEXT = "data/wikitext2/wiki.test.excerpt.raw"
SHORT = "builtin:short"
#: a top-level WikiText heading: " = Title = " (sections are " = = Section = = ")
_HEADING = re.compile(r"^ = [^=].* = $")


def bos_id(tokenizer) -> int | None:
    """The BOS id when the tokenizer puts one in front of a text, else None."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    ids = tokenizer("a", add_special_tokens=True).input_ids
    return bos if ids and ids[0] == bos else None


@dataclass(frozen=True)
class Window:
    """One evaluation window: [1, T] input ids (CPU), the document it comes from, and where."""
    ids: object
    doc: int
    index: int  # its position in its document (0: the document's first window)

    @property
    def targets(self) -> int:
        return int(self.ids.shape[-1]) - 1


@dataclass(frozen=True)
class Corpus:
    """Windows in evaluation order, and what they are."""
    name: str
    windows: tuple[Window, ...]
    documents: int
    window: int

    @property
    def tokens(self) -> int:
        """Target tokens over every window."""
        return sum(w.targets for w in self.windows)

    def first(self, max_tokens: int | None) -> "Corpus":
        """The first windows, up to `max_tokens` targets (a budget; at least one window)."""
        if max_tokens is None:
            return self
        kept, total = [], 0
        for w in self.windows:
            if total + w.targets > max_tokens and kept:
                break
            kept.append(w)
            total += w.targets
        return Corpus(self.name, tuple(kept), len({w.doc for w in kept}), self.window)

    def describe(self) -> str:
        return f"{self.name}: {len(self.windows)} windows of {self.window} tokens from {self.documents} documents"

    def to_json(self) -> dict:
        return {"name": self.name, "windows": len(self.windows), "window_tokens": self.window,
                "documents": self.documents, "tokens": self.tokens}


def bundled(name: str) -> str:
    return resources.files("swtui.core").joinpath(name).read_text(encoding="utf-8")


def documents(text: str) -> list[str]:
    """A text's documents: WikiText articles (split on their top-level headings), else the whole text."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _HEADING.match(line.rstrip("\n"))]
    if len(starts) < 2:
        return [text] if text.strip() else []
    docs = ["".join(lines[a:b]) for a, b in zip(starts, starts[1:] + [len(lines)])]
    return [d for d in docs if d.strip()]


def source_text(source: str | None) -> tuple[str, str]:
    """(name, text) of an evaluation source: None (the bundled WikiText-2 excerpt), `builtin:short`
    (the short bundled text) or a file path (`--eval-file`)."""
    if source is None:
        return "WikiText-2 test (excerpt)", bundled(WIKITEXT)
    if source == SHORT:
        return "short bundled text", bundled("data/eval.txt")
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"--eval-file {source}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    if not text.strip():
        raise UserInputError(f"--eval-file {source} is empty")
    return Path(source).name, text


#: each document's ids per (tokenizer, text), most recent last: every measurement (an arm of a sweep,
#: a figure of the comparison) cuts the same corpus again, and tokenizing it costs more than a tiny
#: model's forward. The entry holds its tokenizer, so an id reused by a new tokenizer never hits.
_TOKENIZED: OrderedDict = OrderedDict()
_TOKENIZED_KEEP = 4
_TOKENIZED_LOCK = threading.Lock()


def document_ids(tokenizer, text: str) -> tuple:
    """The ids of each of `text`'s documents (1-D CPU tensors, no special tokens), tokenized once
    per tokenizer and text."""
    key = (id(tokenizer), text)
    with _TOKENIZED_LOCK:
        hit = _TOKENIZED.get(key)
        if hit is not None and hit[0] is tokenizer:
            _TOKENIZED.move_to_end(key)
            return hit[1]
    ids = tuple(tokenizer(doc, add_special_tokens=False, return_tensors="pt").input_ids[0]
                for doc in documents(text))
    with _TOKENIZED_LOCK:
        _TOKENIZED[key] = (tokenizer, ids)
        while len(_TOKENIZED) > _TOKENIZED_KEEP:
            _TOKENIZED.popitem(last=False)
    return ids


def build(tokenizer, text: str | None = None, name: str | None = None, window: int = WINDOW,
          split: str = "verdicts", context_length: int | None = None) -> Corpus:
    """The corpus of `text` (None: the bundled WikiText-2 excerpt) cut into windows for `tokenizer`,
    in round-robin document order.

    split: "verdicts" (the even documents, or all of a one-document text but its last quarter),
    "held_out" (the rest) or "all"."""
    import torch

    if text is None:
        name, text = source_text(None)
    name = name or "evaluation file"
    if context_length:
        window = min(window, context_length)
    bos = bos_id(tokenizer)
    body = window - 1 if bos is not None else window
    per_doc: list[list] = []
    for ids in document_ids(tokenizer, text):
        chunks = []
        for start in range(0, ids.numel(), body):
            chunk = ids[start:start + body]
            if chunk.numel() < max(1, body):
                break
            # a window owns its ids (cat copies; a view of the cached ids would share them)
            chunk = torch.cat([torch.tensor([bos]), chunk]) if bos is not None else chunk.clone()
            chunks.append(chunk[None])
        per_doc.append(chunks)
    if len(per_doc) == 1 and split != "all":  # one document: its first three quarters judge, the rest is held out
        cut = max(1, (3 * len(per_doc[0])) // 4)
        per_doc = [per_doc[0][:cut]] if split == "verdicts" else [per_doc[0][cut:]]
        doc_ids = [0]
    elif split == "all":
        doc_ids = list(range(len(per_doc)))
    else:
        doc_ids = [i for i in range(len(per_doc)) if (i % 2 == 0) == (split == "verdicts")]
        per_doc = [per_doc[i] for i in doc_ids]
    ordered = []
    for depth in range(max((len(c) for c in per_doc), default=0)):
        for doc, chunks in zip(doc_ids, per_doc):
            if depth < len(chunks):
                ordered.append(Window(chunks[depth], doc, depth))
    if not ordered:
        raise UserInputError(f"the evaluation text ({name}) is too short for one window of {window} tokens")
    return Corpus(f"{name}, {split}" if split != "all" else name, tuple(ordered),
                  len({w.doc for w in ordered}), window)
