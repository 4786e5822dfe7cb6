"""`swtui ablate --stream`: every arm (the baseline, the treatment, the non-SW control) rides one pass
over the weights for the measurement and one per generated token, and the report equals the
in-memory one bit for bit in float32."""

import json

import pytest

from swtui.cli import main
from swtui.cli import ablate as ablate_cli
from swtui.core.stream import lockstep
from swtui.core.tiny import build_tiny

TOKENS = 4
#: (family, treatment): a dense batched family; one whose treatment restores the SA and zeroes a
#: write (hook items that keep state over a generation's steps); an MoE (solo runs, a pruned expert)
CASES = [("llama", ["--prune", "1,5,17", "--scale", "0,1,3=4"]),
         ("gpt2", ["--prune", "1,5,17", "--zero-write", "2,3", "--restore-sa"]),
         ("mixtral", ["--prune", "1,5,17,0", "--prune-expert", "1,1"])]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    made = {}

    def get(arch: str):
        if arch not in made:
            folder = tmp_path_factory.mktemp(f"tiny-{arch}")
            model, tok = build_tiny(arch)
            model.save_pretrained(folder, max_shard_size="100KB")
            tok.save_pretrained(folder)
            made[arch] = folder
        return made[arch]
    return get


def _ablate(folder, treatment, capsys, monkeypatch, stream: bool):
    """(report without `model`/`stream`, the session, [jobs per run_pass call])."""
    sessions, passes = [], []
    real_open, real_pass = ablate_cli.open_session, lockstep.run_pass

    def open_session(args, progress):
        sessions.append(real_open(args, progress))
        return sessions[-1]

    def run_pass(session, jobs, *args, **kwargs):
        passes.append(len(jobs))
        return real_pass(session, jobs, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(ablate_cli, "open_session", open_session)
        m.setattr(lockstep, "run_pass", run_pass)
        assert main(["ablate", str(folder), *treatment, "--nonsw-control", "10", "--max-new-tokens", str(TOKENS),
                     "--json", "--device", "cpu", "--dtype", "float32", *(["--stream"] if stream else [])]) == 0
    report = json.loads(capsys.readouterr().out)
    report.pop("model")
    return report, sessions[-1], passes, report.pop("stream", None)


@pytest.mark.parametrize("arch,treatment", CASES, ids=[c[0] for c in CASES])
def test_streamed_ablate_is_one_pass_per_look_and_equals_in_memory(folders, arch, treatment, capsys, monkeypatch):
    """The JSON (every ratio, interval, perplexity, stopword figure and generation) is the in-memory
    one; the arms' forwards took one pass for the measurement (every arm's windows and variant runs)
    and one per generated token, each pass reading every layer once; the rest of what was read is
    the control's detection (its own forwards), counted on a fresh streamed session."""
    folder = folders(arch)
    plain, _, mem_passes, _ = _ablate(folder, treatment, capsys, monkeypatch, stream=False)
    got, session, passes, stream = _ablate(folder, treatment, capsys, monkeypatch, stream=True)
    assert got == plain
    assert mem_passes == []  # in memory: ordinary forwards
    assert got["control"] and got["treatment"] and got["baseline"]
    from swtui.core.detect import confirmation_prompts

    # the control's detection: its cross-prompt confirmation, one pass for its prompts (the rest of
    # detection is ordinary forwards); then the measurement's look, then one pass per token
    assert passes[0] == len(confirmation_prompts("")), passes
    passes = passes[1:]
    assert len(passes) == 1 + TOKENS, passes
    # every arm's windows in the first: the control's current, the treatment's base and current
    # (rows of one forward, or two runs for an MoE), one job per window and run
    windows = len(ablate_cli._window_sizes(session, None))
    assert passes[0] == windows * (2 if session.batchable else 3), passes
    assert passes[1:] == [2 if session.batchable else 3] * TOKENS, passes
    assert stream["plan_passes"][0] == {"what": "arms", "look": 0} and stream["layers_alive_max"] <= 2

    # what detection (for the control to spare) reads by itself, on a fresh streamed session
    from swtui.core.loading import LoadOptions, load_model
    from swtui.core.session import Session

    fresh = Session(load_model(str(folder), LoadOptions(device="cpu", dtype="float32", stream=True)))
    ablate_cli.control_detection(fresh)
    detection = fresh.loaded.stream.stats.layer_reads
    # detection's count includes the head's check (`metrics._plain_head`: two 4-token forwards, once
    # per model, before its first layer-major pass); the SA's magnitude on --sa-prompt is one forward
    fixed = int("--restore-sa" in treatment)
    n = session.loaded.stream.n_layers
    assert stream["layer_reads"] == detection + n * (fixed + 1 + TOKENS), (stream, detection)
    assert stream["passes"] == detection / n + fixed + 1 + TOKENS


@pytest.mark.parametrize("how", ["cancel", "interrupt"])
def test_a_cancelled_ablation_pass_leaves_the_state_it_found(folders, how):
    """esc (the cancel token) or Ctrl+C in the middle of the arms' pass: no layer left in place or
    read ahead, the session back in the state it was in (the treatment's), the next forward as before."""
    import threading

    import torch

    from swtui.core import metrics
    from swtui.core.errors import Cancelled
    from swtui.core.loading import LoadOptions, load_model
    from swtui.core.session import Session
    from swtui.core.stream.arm_states import ArmPlan, ArmState, measure_arms

    st = Session(load_model(str(folders("llama")), LoadOptions(device="cpu", dtype="float32", stream=True)))
    stream = st.loaded.stream
    ids = st.encode("The quick brown fox jumps over the lazy dog.")
    st.ledger.set_zeros({st.adapter.site(2).weight_name: torch.tensor([3, 9])})
    control = ArmState.of(st)
    st.ledger.set_zeros({})
    st.ledger.prune(1, 5, 17)
    st.set_zero_write(2, 3, True)
    treatment = ArmState.of(st)
    before = metrics.window_losses(st, ids)[0]
    cancel = threading.Event()
    seen = []

    def on_layer(event):
        if event.look is None:  # an ordinary forward (the head's check)
            return
        seen.append(event)
        if event.layer == 2:
            if how == "cancel":
                cancel.set()
            else:
                raise KeyboardInterrupt

    stream.on_layer = on_layer
    with pytest.raises(Cancelled if how == "cancel" else KeyboardInterrupt):
        # the control's jobs last: its state is the one in place when the pass stops
        measure_arms(st, [ArmPlan("treatment", treatment, ("base", "current")), ArmPlan("control", control, ("current",))],
                     cancel=cancel)
    assert [e.look for e in seen] == [0, 0, 0] and seen[-1].eta is not None and seen[-1].pass_bytes > 0
    assert stream.live_layers() == set() and stream._pending is None
    assert ArmState.of(st) == treatment and not st.ledger.zero_masks
    stream.on_layer = None
    assert torch.equal(metrics.window_losses(st, ids)[0], before)


def test_each_arm_is_measured_under_its_own_state(folders):
    """In memory, each arm's figures are those of `metrics.corpus_pass` with that arm's state alone
    (the control's zeros without the treatment, the treatment without the zeros), whichever state
    the session was in: what the streamed run is compared with is itself right."""
    import torch

    from swtui.core import metrics
    from swtui.core.loading import LoadOptions, load_model
    from swtui.core.session import Session
    from swtui.core.stream.arm_states import ArmPlan, ArmState, measure_arms

    s = Session(load_model(str(folders("llama")), LoadOptions(device="cpu", dtype="float32")))
    s.ledger.set_zeros({s.adapter.site(2).weight_name: torch.tensor([3, 9, 40])})
    control = ArmState.of(s)
    control_ref = metrics.corpus_pass(s, ("current",))
    s.ledger.set_zeros({})
    s.ledger.prune(1, 5, 17)
    s.set_zero_write(2, 3, True)
    treatment = ArmState.of(s)
    treatment_ref = metrics.corpus_pass(s, ("base", "current"))
    got, passes = measure_arms(s, [ArmPlan("control", control, ("current",)),
                                   ArmPlan("treatment", treatment, ("base", "current"))])
    assert passes == 2 * len(metrics.measurement_windows(s))  # in memory: one ordinary forward per job
    for name, (losses, report) in (("control", control_ref), ("treatment", treatment_ref)):
        assert set(got[name].losses) == set(losses)
        assert all(torch.equal(got[name].losses[v], losses[v]) for v in losses), name
        assert got[name].stopwords.to_dict() == report.to_dict(), name
    assert not torch.equal(got["control"].losses["current"], got["treatment"].losses["current"])
    assert ArmState.of(s) == treatment
