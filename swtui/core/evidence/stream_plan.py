"""The evaluation plan on a streamed model: every arm of a look in one pass over the weights.

In memory a look's arms run as many forwards (rows of 8), and the lead claim's treatment runs
alone first; each forward of a streamed model would read every layer from disk again. Here a look
is one layer-major pass (`lockstep.run_pass`): every active arm of every pending claim at the
earliest look, with the baseline of the *next* look's windows riding the same pass (its prefixes
and massive positions are what the next look's arms start from, so it cannot be the same look's).
Only the first look's baseline takes a pass of its own. The chunks, their rows and their hooks are
the in-memory runner's (`arms.PlanRunner._chunks`, `_setup`), so each arm's losses equal what an
in-memory runner with the same schedule (`one_pass_per_look=True`) measures, bit for bit; the cost
of the schedule is that a look measures controls a treatment below the threshold would not need.
"""

from __future__ import annotations

from swtui.core.evidence.arms import PlanRunner, _active
from swtui.core.errors import check_cancel
from swtui.core.evidence.plan import ArmResult, ClaimResult
from swtui.core.evidence.lockstep import Job, run_pass


class LookRunner(PlanRunner):
    """PlanRunner whose next batch is every active arm at the earliest look (in memory too, with
    `one_pass_per_look`: the reference the streamed runner is compared with)."""

    def _next(self, pending: list[ClaimResult]) -> tuple[list[ArmResult], int]:
        arms = [a for r in pending for a in _active(r)]
        look = min(a.looks for a in arms)
        return [a for a in arms if a.looks == look], look


class StreamedPlanRunner(LookRunner):
    """One layer-major pass per look over a streamed model (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[int, str, int]] = []  # (run, "baseline" | "arms", look): each pass over the weights
        self._runs = 0

    @property
    def passes(self) -> int:
        return len(self.log)

    def run(self, claims, *args, **kwargs):
        self._runs += 1
        return super().run(claims, *args, **kwargs)

    def _measure(self, batch: list[ArmResult], windows: range, look: int, cancel) -> None:
        from swtui.core.evidence.metrics import check_head

        check_head(self.session)
        missing = [w for w in windows if self.base[w] is None]
        if missing:  # the first look: its baseline first (its massive positions decide where arms zero)
            self._pass(self._baseline_jobs(missing), cancel, look, "baseline")
        chunks, together = self._chunks(batch, windows)
        jobs = []
        for chunk in chunks:
            ids, skip, stacked, context = self._setup(chunk, together)
            jobs.append(Job(ids, skip, stacked, context, lambda losses, c=chunk, s=skip: self._record(c, losses, look, s)))
        looks = self.schedule.looks
        if look + 1 < len(looks):
            jobs += self._baseline_jobs([w for w in range(looks[look], looks[look + 1]) if self.base[w] is None])
        self._pass(jobs, cancel, look, "arms")
        for a in batch:
            a.looks = look + 1

    def _baseline_jobs(self, todo: list[int]) -> list[Job]:
        jobs = []
        for i in range(0, len(todo), self.rows):
            rows = todo[i:i + self.rows]
            ids, context = self._baseline_setup(rows)
            jobs.append(Job(ids, 0, None, context, lambda losses, r=rows: self._baseline_record(r, losses)))
        return jobs

    def _pass(self, jobs: list[Job], cancel, look: int, what: str) -> None:
        if not jobs:
            return
        check_cancel(cancel, "detection cancelled")
        run_pass(self.session, jobs, cancel, look)
        self.log.append((self._runs, what, look))


def make_runner(session, corpus, threshold: float, schedule, massive_channels=(), **kwargs) -> PlanRunner:
    """The plan's runner for `session`: streamed (one pass per look) or in memory."""
    cls = StreamedPlanRunner if getattr(session, "streamed", False) else PlanRunner
    return cls(session, corpus, threshold, schedule, massive_channels, **kwargs)
