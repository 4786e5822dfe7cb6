"""Detection's independent probes in one pass over the weights.

The cross-prompt confirmation probes the model on several prompts; each probe is an ordinary
forward with the probe's hooks (`probe.probe_parts`), and on a streamed model each forward is a
pass over the weights. The probes do not depend on one another, so here each is a job of one
layer-major pass (`lockstep.run_pass`): its variant run's hooks and its probe hooks installed while
it goes through each layer, nothing measured at the end (the hooks saw what the probe needs). Same
forwards, same hooks in the same order: the same statistics, bit for bit. The remove-and-repeat
rounds stay ordinary forwards: each round's probe depends on the weights the last one removed.
"""

from __future__ import annotations

import contextlib

from swtui.core.errors import check_cancel


def probe_prompts(session, prompts: list[str], variant: str = "current", cancel=None) -> list:
    """[ProbeResult] of `detect.run_probe` on each prompt: one pass for all of them when streamed."""
    from swtui.core.detection.probe import probe_down_proj, probe_parts
    from swtui.core.evidence.lockstep import Job, run_pass

    if not getattr(session, "streamed", False):  # `detect.run_probe` for each
        out = []
        for text in prompts:
            check_cancel(cancel, "detection cancelled")
            ids = session.encode(text)
            _, ctx = session.variant_runs((variant,))[0]
            with ctx:
                out.append(probe_down_proj(session.model, session.adapter, ids, prompt=text,
                                           tokens=session.token_strings(ids)))
        return out

    check_cancel(cancel, "detection cancelled")
    jobs, finishes = [], []
    for text in prompts:
        ids = session.encode(text)
        install, finish = probe_parts(session.model, session.adapter)

        @contextlib.contextmanager
        def context(install=install):
            _, ctx = session.variant_runs((variant,))[0]
            with ctx, install():
                yield

        jobs.append(Job(ids, 0, None, context, lambda results: None, lambda s, batch: []))
        finishes.append((finish, ids, text))
    run_pass(session, jobs, cancel)
    return [finish(ids.shape[-1], text, session.token_strings(ids)) for finish, ids, text in finishes]
