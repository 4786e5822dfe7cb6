"""Greedy generation for one or both variants, streamed token by token, and where two texts part."""

from __future__ import annotations

import inspect
import threading
from typing import Callable

from swtui.core.edits.session import VARIANTS, Session
from swtui.core.errors import UserInputError, check_cancel

#: on_token(variant, token_id, text_so_far) -> None
TokenFn = Callable[[str, int, str], None]


def generate(session: Session, prompt: str, max_new_tokens: int = 24, variants=VARIANTS,
             cancel: threading.Event | None = None, on_token: TokenFn | None = None) -> dict[str, str]:
    """Greedy continuation of `prompt` per variant, streaming through `on_token`; cancellable."""
    import torch

    if not 0 < max_new_tokens <= 4096:
        raise UserInputError("the number of new tokens must be between 1 and 4096")
    ids = session.encode(prompt, max_tokens=max(1, session.context_length - max_new_tokens))
    eos = session.tokenizer.eos_token_id
    # transformers 5.x calls the KV cache `cache`; 4.x called it `past_key_values`
    cache_kw = "cache" if "cache" in inspect.signature(session.model.forward).parameters else "past_key_values"

    def run(n: int, names: tuple[str, ...]) -> list[str]:
        out_ids: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        past = None
        step_ids = ids.expand(n, -1)
        with torch.no_grad():
            for _ in range(max_new_tokens):
                check_cancel(cancel, "generation cancelled")
                out = session.model(input_ids=step_ids, use_cache=True, **{cache_kw: past})
                past = out.get("cache", None) if cache_kw == "cache" else out.past_key_values
                nxt = out.logits[:, -1].argmax(dim=-1)
                for i, tid in enumerate(nxt.tolist()):
                    if done[i]:
                        continue
                    out_ids[i].append(tid)
                    if on_token is not None:
                        on_token(names[i], tid, session.tokenizer.decode(out_ids[i], skip_special_tokens=True))
                    if tid == eos:
                        done[i] = True
                if all(done):
                    break
                step_ids = nxt[:, None]
        return [session.tokenizer.decode(o, skip_special_tokens=True) for o in out_ids]

    result: dict[str, str] = {}
    for names, ctx in session.variant_runs(variants):
        with ctx:
            result.update(zip(names, run(len(names), names)))
    return result


def first_divergence(a: list[int] | str, b: list[int] | str) -> int | None:
    """Index of the first differing element, or None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
