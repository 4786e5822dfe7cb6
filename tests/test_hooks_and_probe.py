"""Exactness of the A/B activation correction, the probe's statistics, and hook hygiene."""

import pytest
import torch

from swtui.core import metrics
from swtui.core.hooks import count_hooks
from swtui.core.probe import probe_down_proj


def _logits(session, text="Apple Inc. is a worldwide tech company."):
    ids = session.encode(text)
    return session.model(input_ids=ids, use_cache=False).logits[0]


@torch.no_grad()
def test_batched_base_row_equals_pristine_model(tiny):
    pristine = _logits(tiny)
    tiny.ledger.scale(1, 5, 17, 0.25)
    tiny.ledger.prune(2, 3, 4)
    edited = _logits(tiny)
    ids = tiny.encode("Apple Inc. is a worldwide tech company.")
    (names, ctx), = tiny.variant_runs(("base", "current"))
    with ctx:
        both = tiny.model(input_ids=ids.expand(2, -1), use_cache=False).logits
    assert names == ("base", "current")
    torch.testing.assert_close(both[0], pristine, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(both[1], edited, rtol=1e-4, atol=1e-4)
    assert count_hooks(tiny.model) == 0


@torch.no_grad()
def test_probe_matches_full_activations(tiny):
    site = tiny.adapter.site(1)
    seen = {}
    h = site.down.register_forward_hook(lambda m, a, o: seen.update(x=a[0].clone(), y=o.clone()))
    ids = tiny.encode("Apple Inc. is a worldwide tech company.")
    tiny.model(input_ids=ids, use_cache=False)
    h.remove()
    probe = probe_down_proj(tiny.model, tiny.adapter, ids)
    s = probe.layers[1]
    x, y = seen["x"][0], seen["y"][0]
    assert s.in_max == pytest.approx(x.abs().max().item())
    assert s.out_max == pytest.approx(y.abs().max().item())
    assert x.abs()[s.in_token, s.in_channel] == x.abs().max()
    assert y.abs()[s.out_token, s.out_channel] == y.abs().max()
    assert count_hooks(tiny.model) == 0


def test_hooks_removed_when_forward_raises(tiny):
    def explode(module, args, output):
        raise RuntimeError("boom in a hook")

    h = tiny.adapter.site(2).down.register_forward_hook(explode)
    ids = tiny.encode("hello")
    with pytest.raises(RuntimeError):
        probe_down_proj(tiny.model, tiny.adapter, ids)
    h.remove()
    assert count_hooks(tiny.model) == 0
    tiny.ledger.prune(1, 5, 17)
    h = tiny.adapter.site(3).down.register_forward_hook(explode)
    with pytest.raises(RuntimeError):
        metrics.perplexity(tiny, "some text for perplexity")
    h.remove()
    assert count_hooks(tiny.model) == 0


def test_generation_ab_rows_match_single_runs(tiny):
    tiny.ledger.prune(1, 5, 17)
    both = metrics.generate(tiny, "The capital", 8)
    cur = metrics.generate(tiny, "The capital", 8, variants=("current",))
    base = metrics.generate(tiny, "The capital", 8, variants=("base",))
    assert both == {"base": base["base"], "current": cur["current"]}


def test_generation_cancel(tiny):
    import threading

    from swtui.core.errors import Cancelled

    ev = threading.Event()
    seen = []

    def on_token(variant, tid, text):
        seen.append(tid)
        ev.set()

    with pytest.raises(Cancelled):
        metrics.generate(tiny, "The capital", 50, cancel=ev, on_token=on_token)
    assert 0 < len(seen) <= 2
    assert count_hooks(tiny.model) == 0


def test_empty_prompt_refused(tiny):
    from swtui.core.errors import UserInputError

    with pytest.raises(UserInputError):
        tiny.encode("   ")


def test_long_prompt_truncated_with_notice(tiny):
    notices = []
    ids = tiny.encode("word " * 2000, notices=notices)
    assert ids.shape[-1] == tiny.context_length and "truncated" in notices[0]
