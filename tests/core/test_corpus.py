"""The evaluation corpus's windows: tokenized once per tokenizer and text, each window owning its ids."""

from support.builders import tiny_session
from swtui.core.evidence.corpus import build


class Counting:
    """A real tokenizer whose encode calls are counted."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def ids_of(corpus) -> list:
    return [w.ids.tolist() for w in corpus.windows]


def test_the_corpus_is_tokenized_once_per_tokenizer_and_text():
    tok = Counting(tiny_session("llama").tokenizer)
    held = build(tok, split="held_out")
    first = tok.calls
    assert first > 5  # every document, and the BOS probe
    verdicts = build(tok, split="verdicts")
    again = build(tok, split="held_out", context_length=32)
    assert tok.calls - first <= 2  # the BOS probe only: the documents' ids are reused
    assert {w.doc for w in held.windows}.isdisjoint({w.doc for w in verdicts.windows})
    assert again.window == 32 and again.tokens > 0
    # another tokenizer (even one that wraps the same vocabulary) is tokenized anew, to the same windows
    other = Counting(tok.tokenizer)
    assert ids_of(build(other, split="held_out")) == ids_of(held) and other.calls > 5
    # a different text is not served from the cache
    short = build(tok, "A short text of its own. " * 40, name="own", split="all")
    assert short.documents == 1 and ids_of(short) != ids_of(held)[:len(short.windows)]


def test_a_window_owns_its_ids():
    tok = tiny_session("llama").tokenizer
    corpus = build(tok, split="held_out")
    want = ids_of(corpus)
    corpus.windows[0].ids[0, -1] = -7  # a caller that writes into a window
    assert ids_of(build(tok, split="held_out")) == want
