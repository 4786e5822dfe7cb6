"""The evaluation plan: sequential looks with error spending, shared prefixes that change nothing,
controls matched on what the claim is about, the massive-positions ablation."""

import math

import pytest
import torch

from swtui.core.evidence.arms import PlanRunner
from swtui.core.evidence.corpus import Corpus, Window
from swtui.core.evidence.stats import t_quantile, window_ratio
from swtui.core.evidence.plan import Arm, Claim, ClaimKind, Edit, Effect, Outcome, Schedule

from support.builders import tiny_session


# -- the statistics ----------------------------------------------------------------------------
def test_t_quantiles_match_the_tables():
    assert t_quantile(0.975, 3) == pytest.approx(3.1824, abs=1e-4)
    assert t_quantile(0.975, 7) == pytest.approx(2.3646, abs=1e-4)
    assert t_quantile(0.995, 10) == pytest.approx(3.1693, abs=1e-4)
    assert t_quantile(0.025, 5) == pytest.approx(-2.5706, abs=1e-4)


def test_the_cluster_bootstrap_resamples_windows_not_tokens():
    """Two arms with the same per-token spread: tokens independent in one, the whole window shifted
    together in the other. Only the second has correlated tokens, and its interval must be the wider:
    a bootstrap over tokens (blocks crossing windows) would not see the difference."""
    g = torch.Generator().manual_seed(3)
    base = [torch.rand(63, generator=g, dtype=torch.float64) for _ in range(32)]
    shifts = torch.randn(32, generator=g, dtype=torch.float64) * 0.3
    noise = [torch.randn(63, generator=g, dtype=torch.float64) * 0.3 for _ in range(32)]
    independent = window_ratio(base, [b + 0.2 + n for b, n in zip(base, noise)])
    clustered = window_ratio(base, [b + 0.2 + s for b, s in zip(base, shifts)])
    width = lambda r: math.log(r.hi / r.lo)  # noqa: E731
    assert width(clustered) > 4 * width(independent)
    assert window_ratio(base, base).lo == pytest.approx(1.0) and window_ratio(base, base).hi == pytest.approx(1.0)


# -- sequential looks, on synthetic losses (the loop and its decisions, no model) ------------------
class _Synthetic(PlanRunner):
    """The plan's loop over given per-window losses: `diffs[arm][w]` nats added to a fixed baseline."""

    def __init__(self, diffs: dict, windows: int, schedule: Schedule, threshold: float = 1.5):
        corpus = Corpus("synthetic", tuple(Window(torch.zeros(1, 64, dtype=torch.long), w % 4, w // 4)
                                           for w in range(windows)), 4, 64)
        self.diffs = diffs
        g = torch.Generator().manual_seed(0)
        self.fixed = [torch.rand(63, generator=g, dtype=torch.float64) * 3 for _ in range(windows)]
        super().__init__(session=None, corpus=corpus, threshold=threshold, schedule=schedule, rows=8)

    def _measure(self, batch, windows, look, cancel):
        for w in windows:
            self.base[w] = self.fixed[w]
        for a in batch:
            for w in windows:
                self.losses.setdefault(a.arm.edit, {})[w] = self.fixed[w] + self.diffs[a.arm.name][w]
            a.looks = look + 1


def _claim(n_controls: int = 0) -> Claim:
    arm = lambda name, i: Arm(name, Edit(prune=((0, 0, i),)), name)  # noqa: E731
    return Claim("c", ClaimKind.WEIGHT, arm("t", 0), tuple(arm(f"k{i}", i + 1) for i in range(n_controls)))


def _early_fluke(windows: int = 64) -> list[float]:
    """An effect that looks like ×1.8 on the first eight windows and is ×1.05 overall."""
    head = [0.35, 0.85, 0.40, 0.80, 0.45, 0.75, 0.50, 0.70]
    g = torch.Generator().manual_seed(1)
    rest = (torch.randn(windows - 8, generator=g, dtype=torch.float64) * 0.05).tolist()
    return head + rest


def test_error_spending_keeps_an_early_fluke_from_deciding():
    """With error spent over the looks, the fluke of the first look decides nothing and the whole
    budget says what a full-budget run says; at an unspent 95% per look, it would stop at the first
    look and call a ×1.02 effect one that clears ×1.5 (the mutation this test guards against)."""
    d = {"t": [torch.full((63,), v, dtype=torch.float64) for v in _early_fluke()]}
    seq = _Synthetic(d, 64, Schedule.for_budget(64, decisions=1)).run([_claim()])[0]
    full = _Synthetic(d, 64, Schedule((64,), 1)).run([_claim()])[0]
    assert full.outcome == Outcome.BELOW
    assert seq.outcome == full.outcome and seq.treatment.looks > 1
    # the fluke itself: at 95% and one look of eight windows, it clears the threshold
    naive = window_ratio([torch.zeros(63)] * 8, d["t"][:8], level=0.95)
    assert naive.lo >= 1.5


def test_a_clear_effect_stops_at_the_first_look_and_controls_below_stop_too():
    big = [torch.full((63,), 1.4 + 0.05 * math.sin(w), dtype=torch.float64) for w in range(64)]
    none = [torch.full((63,), 0.001 * math.cos(w), dtype=torch.float64) for w in range(64)]
    diffs = {"t": big, **{f"k{i}": none for i in range(5)}}
    r = _Synthetic(diffs, 64, Schedule.for_budget(64, decisions=3)).run([_claim(5)])[0]
    assert r.outcome == Outcome.CLEARS
    assert r.treatment.looks == 1 and all(c.looks == 1 for c in r.controls)
    assert r.treatment.ratio.tokens == 4 * 63  # the first look: four windows


def test_a_treatment_must_exceed_its_worst_control():
    big = [torch.full((63,), 1.0 + 0.05 * math.sin(w), dtype=torch.float64) for w in range(64)]
    same = [torch.full((63,), 1.0 + 0.05 * math.cos(w), dtype=torch.float64) for w in range(64)]
    none = [torch.zeros(63, dtype=torch.float64) for _ in range(64)]
    diffs = {"t": big, "k0": none, "k1": same, "k2": none, "k3": none, "k4": none}
    r = _Synthetic(diffs, 64, Schedule.for_budget(64, decisions=1)).run([_claim(5)])[0]
    assert r.outcome == Outcome.NOT_BEYOND_CONTROLS
    assert r.worst_control.arm.name == "k1"


def test_below_threshold_marks_a_small_real_effect():
    small = [torch.full((63,), 0.06 + 0.01 * math.sin(w), dtype=torch.float64) for w in range(64)]
    r = _Synthetic({"t": small}, 64, Schedule.for_budget(64, decisions=1)).run([_claim()])[0]
    assert r.outcome == Outcome.BELOW and r.small_effect
    zero = [torch.full((63,), 0.01 * math.sin(w), dtype=torch.float64) for w in range(64)]
    r = _Synthetic({"t": zero}, 64, Schedule.for_budget(64, decisions=1)).run([_claim()])[0]
    assert r.outcome == Outcome.BELOW and not r.small_effect


def test_the_level_spends_the_error_over_looks_and_decisions():
    s = Schedule.for_budget(64, decisions=6)
    assert s.looks == (4, 8, 16, 32, 64)
    assert s.level == pytest.approx(1 - 0.05 / 30)
    assert "Bonferroni" in s.method() and "5 looks × 6 decisions" in s.method()


# -- shared prefixes -----------------------------------------------------------------------------
def _corpus(session, windows: int = 6) -> Corpus:
    g = torch.Generator().manual_seed(5)
    v = session.model.config.vocab_size
    return Corpus("random", tuple(Window(torch.randint(0, v, (1, 64), generator=g), w, 0) for w in range(windows)),
                  windows, 64)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3", "opt", "gpt_neox", "phi3", "qwen2"])
def test_an_arm_run_from_the_baselines_prefix_equals_a_full_forward_bit_for_bit(arch):
    s = tiny_session(arch)
    layer = s.adapter.n_layers // 2
    arms = [Arm("a", Edit(prune=((layer, 3, 7),)), "a"), Arm("b", Edit(zero_writes=((layer, 4),)), "b")]
    claims = [Claim("x", ClaimKind.ABLATION, arms[0]), Claim("y", ClaimKind.ABLATION, arms[1])]
    cached = PlanRunner(s, _corpus(s), 1.5, Schedule((6,), 1))
    cached.run(claims)
    assert cached.cost.prefix_layers_skipped > 0
    full = PlanRunner(s, _corpus(s), 1.5, Schedule((6,), 1), prefix=False)
    full.run(claims)
    assert full.cost.prefix_layers_skipped == 0
    for a in arms:
        for w in range(6):
            assert torch.equal(cached.losses[a.edit][w], full.losses[a.edit][w]), (arch, a.name, w)


def test_a_prefix_is_never_used_for_an_arm_that_edits_an_earlier_layer():
    """An arm editing layer 1 batched with one editing layer 3 must run from layer 1: the shared
    prefix is the earliest edited layer of the forward."""
    s = tiny_session("llama")
    early = Arm("early", Edit(prune=((1, 5, 17),)), "early")
    late = Arm("late", Edit(prune=((3, 3, 7),)), "late")
    runner = PlanRunner(s, _corpus(s, 4), 1.5, Schedule((4,), 1))
    runner.run([Claim("x", ClaimKind.ABLATION, late, (early,))])
    solo = PlanRunner(s, _corpus(s, 4), 1.5, Schedule((4,), 1))
    solo.run([Claim("y", ClaimKind.ABLATION, early)])
    for w in range(4):
        assert torch.allclose(runner.losses[early.edit][w], solo.losses[early.edit][w], atol=1e-6)
    assert not torch.allclose(runner.losses[early.edit][0], runner.base[0], atol=1e-4)  # the edit did something


# -- what streams first, what is measured once ----------------------------------------------------
def test_the_lead_treatment_streams_provisionally_before_its_controls_are_measured():
    big = [torch.full((63,), 1.4 + 0.05 * math.sin(w), dtype=torch.float64) for w in range(64)]
    none = [torch.full((63,), 0.001 * math.cos(w), dtype=torch.float64) for w in range(64)]
    runner = _Synthetic({"t": big, **{f"k{i}": none for i in range(5)}}, 64, Schedule.for_budget(64, decisions=1))
    told = []
    runner.run([_claim(5)], lambda r: told.append((r.done, r.provisional, [c.looks for c in r.controls])))
    # the treatment's effect streams with the first forward (one control fills its spare rows)
    assert told[0][:2] == (False, Effect.HURTS) and sum(told[0][2]) < 5
    assert told[-1][0] and len(told) == 2


def test_an_edit_shared_by_two_claims_is_measured_once():
    """Two candidates of one column share controls: each shared control is one measurement."""
    s = tiny_session("llama")
    shared = Arm("k", Edit(prune=((2, 3, 7),)), "k")
    a = Claim("a", ClaimKind.WEIGHT, Arm("a", Edit(prune=((2, 5, 17),)), "a"), (shared,))
    b = Claim("b", ClaimKind.WEIGHT, Arm("b", Edit(prune=((2, 6, 17),)), "b"),
              (Arm("k again", shared.edit, "k"),))
    runner = PlanRunner(s, _corpus(s, 4), 1.0001, Schedule((4,), 2))
    results = runner.run([a, b])
    assert "k again" not in runner.cost.tokens and runner.cost.tokens["k"] == 4 * 63
    assert results[0].controls[0].ratio == results[1].controls[0].ratio


def test_a_descriptive_claim_stops_after_its_looks():
    half = [torch.full((63,), 0.4 + 0.2 * math.sin(3 * w), dtype=torch.float64) for w in range(64)]
    claim = Claim("d", ClaimKind.ALL_TOKENS, Arm("t", Edit(prune=((0, 0, 0),)), "t"), decides=False, max_looks=1)
    (r,) = _Synthetic({"t": half}, 64, Schedule.for_budget(64, decisions=1)).run([claim])
    assert r.treatment.looks == 1 and r.treatment.stopped == "budget" and r.outcome is not None


def test_one_look_measures_every_control_before_the_verdict():
    """--full-budget is a schedule of one look: the treatment, measured first, must not close its
    claim before its controls are measured (the bug a per-claim "last look" made)."""
    big = [torch.full((63,), 1.4 + 0.05 * math.sin(w), dtype=torch.float64) for w in range(64)]
    none = [torch.full((63,), 0.001 * math.cos(w), dtype=torch.float64) for w in range(64)]
    r = _Synthetic({"t": big, **{f"k{i}": none for i in range(5)}}, 64, Schedule((64,), 1)).run([_claim(5)])[0]
    assert r.outcome == Outcome.CLEARS and all(c.windows == 64 for c in r.controls)
