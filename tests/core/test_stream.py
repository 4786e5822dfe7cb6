"""Layer streaming (`--stream`): the same candidates, channels, verdicts and per-token losses as the
in-memory model, every arm of a look in one pass, never more than two decoder layers alive."""

import json

import pytest
import torch

from swtui.cli import ablate as ablate_cli
from swtui.cli import main
from swtui.core.evidence import metrics
from swtui.core.detection.detect import DetectOptions, detect
from swtui.core.errors import UserInputError
from swtui.core.model.loading import LoadOptions, load_model
from swtui.core.edits.session import Session
from swtui.core.evidence import lockstep
from swtui.core.evidence import stream_plan
from swtui.core.model.tiny import MOE_ARCHS, TINY_ARCHS, build_tiny

TEXT = "The quick brown fox jumps over the lazy dog, and the dog sleeps on. " * 2


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    made = {}

    def get(arch: str):
        if arch not in made:
            folder = tmp_path_factory.mktemp(f"tiny-{arch}")
            model, tok = build_tiny(arch)
            model.save_pretrained(folder, max_shard_size="100KB")  # several shards, a few layers each
            tok.save_pretrained(folder)
            made[arch] = folder
        return made[arch]
    return get


def _session(folder, stream: bool) -> Session:
    return Session(load_model(str(folder), LoadOptions(device="cpu", dtype="float32", stream=stream)))


def _scan(session, monkeypatch, runner_cls=None):
    """detect() on `session`, and the plan runners it made (of `runner_cls`; None: the default's)."""
    made = []
    if runner_cls is None:
        return detect(session, DetectOptions()), made

    def make(s, *args, **kwargs):
        made.append(runner_cls(s, *args, **kwargs))
        return made[-1]

    with monkeypatch.context() as m:
        m.setattr(stream_plan, "make_runner", make)
        return detect(session, DetectOptions()), made


def _summary(det):
    return ([(c.key, c.verdict, c.is_super) for c in det.candidates],
            [(ch.channel, ch.first_layer, ch.persist_layers) for ch in det.channels],
            [(g.channel, g.verdict) for g in det.groups])


@pytest.mark.parametrize("arch", TINY_ARCHS + MOE_ARCHS)
def test_streamed_scan_equals_in_memory(folders, arch, monkeypatch):
    """Same candidates, channels and verdicts as the ordinary in-memory scan; every arm's per-token
    losses (and the baseline's) equal, bit for bit, an in-memory runner with the same schedule
    (one batch per look); one pass per look (+1, the first look's baseline); two layers at most."""
    folder = folders(arch)
    plain, _ = _scan(_session(folder, False), monkeypatch)
    ref, (mem_runner,) = _scan(_session(folder, False), monkeypatch, stream_plan.LookRunner)
    st = _session(folder, True)
    assert st.adapter.site(0).weight.device.type == "meta"  # nothing of the layers held
    got, (st_runner,) = _scan(st, monkeypatch, stream_plan.StreamedPlanRunner)
    assert _summary(got) == _summary(ref) == _summary(plain)
    assert set(st_runner.losses) == set(mem_runner.losses) and st_runner.losses
    for edit, windows in mem_runner.losses.items():
        assert set(st_runner.losses[edit]) == set(windows), edit
        for w, loss in windows.items():
            assert torch.equal(st_runner.losses[edit][w], loss), (edit, w)
    for a, b in zip(mem_runner.base, st_runner.base):  # (streamed: also the next look's, read ahead)
        assert a is None or torch.equal(a, b)
    arms = [(run, look) for run, what, look in st_runner.log if what == "arms"]
    assert len(arms) == len(set(arms)), f"a look of one run took several passes: {st_runner.log}"
    assert [what for _, what, _ in st_runner.log].count("baseline") == 1, st_runner.log  # later ones ride
    stream = st.loaded.stream
    assert stream.peak_live <= 2, f"{stream.peak_live} layers alive at once"
    assert all(p.device.type == "meta" for n, p in st.model.named_parameters() if stream.streams(n))


def test_each_pass_reads_each_layer_once(folders, monkeypatch):
    """The reader thread and the layer-major loop: a pass reads every layer from the files exactly
    once, whatever the number of arms riding it, and reports each layer with its bytes and an ETA."""
    st = _session(folders("llama"), True)
    stream = st.loaded.stream
    reads, events = [], []
    real = stream._read

    def read(i):
        reads.append((stream.look, i))
        return real(i)

    monkeypatch.setattr(stream, "_read", read)
    stream.on_layer = events.append
    _, (runner,) = _scan(st, monkeypatch, stream_plan.StreamedPlanRunner)
    by_look: dict = {}
    for look, layer in reads:
        if look is not None:
            by_look.setdefault(look, []).append(layer)
    assert by_look and runner.passes >= 2
    for look, layers in by_look.items():
        passes = sum(1 for _, _, at in runner.log if at == look)  # look 0: its baseline, then its arms
        assert sorted(layers) == sorted(list(range(stream.n_layers)) * passes), (look, layers)
    assert stream.stats.wasted_reads == 0
    plan = [e for e in events if e.look is not None]
    assert [e.layer for e in plan] == [layer for look, layer in reads if look is not None]
    assert all(e.eta is not None and e.pass_bytes <= e.layer_bytes for e in events)
    assert events[-1].total_bytes == stream.stats.bytes_read


def test_current_edits_apply_to_each_read_and_nothing_is_written_back(folders):
    """A ledger edit is state applied to each read layer (the same losses as in memory); restoring
    it gives the pristine losses back, and the files are never touched."""
    folder = folders("llama")
    files = {p: p.read_bytes() for p in folder.glob("*.safetensors")}
    mem, st = _session(folder, False), _session(folder, True)
    ids = mem.encode(TEXT)
    before = metrics.window_losses(st, ids)[0]
    for s in (mem, st):
        s.ledger.prune(1, 5, 17)
        s.ledger.scale(0, 1, 3, 4.0)
    assert torch.equal(metrics.window_losses(mem, ids)[0], metrics.window_losses(st, ids)[0])
    assert st.ledger.current_value(1, 5, 17) == 0.0
    st.ledger.restore_all()
    assert torch.equal(metrics.window_losses(st, ids)[0], before)
    assert {p: p.read_bytes() for p in folder.glob("*.safetensors")} == files


def test_stream_refuses_what_it_cannot_do(folders):
    with pytest.raises(UserInputError):
        load_model("tiny:llama", LoadOptions(stream=True))
    with pytest.raises(UserInputError):
        load_model(str(folders("llama")), LoadOptions(stream=True, device_map="auto"))


def _stop_at(stream, how: str, cancel, when) -> list:
    """Stop the run at the first layer event of a layer-major pass for which `when(event, seen)`
    holds: esc (`cancel` set) or Ctrl+C (KeyboardInterrupt). Returns the pass events seen (the
    ordinary forwards' are skipped: probes, the head's check)."""
    seen: list = []

    def on_layer(event):
        if event.look is None:
            return
        seen.append(event)
        if when(event, seen):
            if how == "cancel":
                cancel.set()
            else:
                raise KeyboardInterrupt

    stream.on_layer = on_layer
    return seen


@pytest.mark.parametrize("how", ["cancel", "interrupt"])
def test_a_cancelled_pass_leaves_nothing_behind(folders, how):
    """esc (the cancel token) or Ctrl+C (KeyboardInterrupt) in the middle of a look's pass: no
    layer left in place or read ahead, the ledger back to the user's state, the next forward the
    same as before."""
    import threading

    from swtui.core.errors import Cancelled

    st = _session(folders("mixtral"), True)  # solo arms: prunes through the ledger mid-pass
    stream = st.loaded.stream
    st.ledger.scale(0, 1, 3, 2.0, expert=1)
    ids = st.encode(TEXT)
    before = metrics.window_losses(st, ids)[0]
    cancel = threading.Event()
    seen = _stop_at(stream, how, cancel,  # in the arms' pass, after look 0's baseline's
                    lambda event, seen: event.look == 0 and event.layer == 1 and len(seen) > stream.n_layers)
    with pytest.raises(Cancelled if how == "cancel" else KeyboardInterrupt):
        detect(st, DetectOptions(), cancel=cancel)
    assert len(seen) == stream.n_layers + 2
    assert stream.live_layers() == set() and stream._pending is None
    assert all(p.device.type == "meta" for n, p in st.model.named_parameters() if stream.streams(n))
    assert list(st.ledger.edits) == [(0, 1, 3, 1)] and not st.ledger.pruned_experts
    stream.on_layer = None
    assert torch.equal(metrics.window_losses(st, ids)[0], before)


def test_the_census_streams_a_model_that_does_not_fit(folders, monkeypatch):
    """A folder whose weights exceed the memory available is streamed, with a notice; its row is the
    in-memory row (the numbers are the same) marked `streamed`."""
    from swtui.core.snapshot import census
    from swtui.core.model.stream import opening

    folder = folders("llama")
    target = census.Target(str(folder), "dir", folder)
    load = LoadOptions(device="cpu", dtype="float32")
    plain, _ = census.scan_one(target, load, DetectOptions(impact=False))
    monkeypatch.setattr(opening, "available_memory", lambda device="cpu": 1 << 10)
    notes = []
    row, _ = census.scan_one(target, load, DetectOptions(impact=False), lambda stage, frac: notes.append(stage))
    assert row["streamed"] and not plain["streamed"]
    assert any(n.startswith("streaming: its weights") for n in notes), notes
    assert {k: v for k, v in row.items() if k != "streamed"} == {k: v for k, v in plain.items() if k != "streamed"}


def test_ablate_streamed_gives_the_in_memory_figures(folders, capsys):
    """`swtui ablate --stream`: the treatment's and the non-SW control's ratios as in memory."""
    import json

    from swtui.cli import main

    got = []
    for extra in ([], ["--stream"]):
        assert main(["ablate", str(folders("llama")), "--prune", "1,5,17", "--nonsw-control", "10", "--json",
                     "--device", "cpu", "--dtype", "float32", *extra]) == 0
        report = json.loads(capsys.readouterr().out)
        got.append((report["treatment"]["ratio"], report["treatment"]["ratio_ci95"], report["control"]["ratio"]))
    assert got[0] == got[1]


@pytest.mark.parametrize("arch", ["llama", "gemma3", "mixtral"])
def test_the_confirmation_probes_ride_one_pass(folders, arch):
    """The cross-prompt confirmation's probes (independent forwards) are one pass over the weights
    when streamed, and every layer's statistics equal the in-memory probes' (gemma3: a norm after
    down_proj; mixtral: fused experts), under the current state's hooks (an SA restore)."""
    from swtui.core.detection.detect import confirmation_prompts
    from swtui.core.detection.stream_probes import probe_prompts

    prompts = confirmation_prompts("The capital of France is")
    got = []
    for stream in (False, True):
        s = _session(folders(arch), stream)
        if arch != "mixtral":
            s.ledger.prune(1, 5, 17)
            s.set_sa_restore(1, 5, 17, True)
        got.append(probe_prompts(s, prompts))
        if stream:  # one pass for the 4 probes, after the head's check (two ordinary forwards, once per
            # model: decided before the pass, where no layer is read and it would come out wrong)
            assert s.loaded.stream.stats.layer_reads == s.loaded.stream.n_layers * (1 + 2)
    assert len(got[1]) == len(prompts)
    for mem, st in zip(*got):
        assert (mem.prompt, mem.tokens) == (st.prompt, st.tokens)
        assert [layer.to_dict() for layer in mem.layers] == [layer.to_dict() for layer in st.layers], mem.prompt



@pytest.mark.parametrize("arch", ["llama", "mixtral"])
def test_the_channel_search_rides_one_pass(folders, arch):
    """The channel search's activations before and after pruning each channel's carriers
    (independent forwards, the prunes through the ledger) are one pass when streamed, with the
    in-memory values, and the ledger is left as found."""
    from swtui.core.detection.groups import channel_maxes

    key = (1, 5, 17, 0) if arch == "mixtral" else (1, 5, 17)
    asks = [(5, 1, [key]), (7, 0, []), (5, 2, [key, key[:2] + (3,) + key[3:]])]
    got = []
    for stream in (False, True):
        s = _session(folders(arch), stream)
        metrics.check_head(s)
        before = s.loaded.stream.stats.layer_reads if stream else 0
        got.append(channel_maxes(s, "The capital of France is", asks))
        if stream:
            assert s.loaded.stream.stats.layer_reads - before == s.loaded.stream.n_layers  # 5 forwards, one pass
        assert s.ledger.count == 0
    assert got[0] == got[1] and got[0][1][1] is None and None not in (got[0][0][1], got[0][2][1])


# -- `ablate --stream`: every arm (the baseline, the treatment, the non-SW control) rides one pass over
# the weights for the measurement and one per generated token, equal to in memory bit for bit
TOKENS = 4
#: (family, treatment): a dense batched family; one whose treatment restores the SA and zeroes a
#: write (hook items that keep state over a generation's steps); an MoE (solo runs, a pruned expert)
CASES = [("llama", ["--prune", "1,5,17", "--scale", "0,1,3=4"]),
         ("gpt2", ["--prune", "1,5,17", "--zero-write", "2,3", "--restore-sa"]),
         ("mixtral", ["--prune", "1,5,17,0", "--prune-expert", "1,1"])]


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
    from swtui.core.detection.detect import confirmation_prompts
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session

    # what the control's detection does by itself, on a fresh streamed session: its layer-major
    # passes (the cross-prompt confirmation's prompts, the channel search's forwards) and its reads
    fresh = Session(load_model(str(folder), LoadOptions(device="cpu", dtype="float32", stream=True)))
    detection_passes = []
    real_pass = lockstep.run_pass
    with monkeypatch.context() as m:
        m.setattr(lockstep, "run_pass", lambda s, jobs, *a, **k: (detection_passes.append(len(jobs)),
                                                                   real_pass(s, jobs, *a, **k))[1])
        ablate_cli.control_detection(fresh)
    detection = fresh.loaded.stream.stats.layer_reads
    assert detection_passes[0] == len(confirmation_prompts(""))
    # the detection's passes, then the measurement's look, then one pass per token
    assert passes[:len(detection_passes)] == detection_passes, passes
    passes = passes[len(detection_passes):]
    assert len(passes) == 1 + TOKENS, passes
    # every arm's windows in the first: the control's current, the treatment's base and current
    # (rows of one forward, or two runs for an MoE), one job per window and run
    windows = len(ablate_cli._window_sizes(session, None))
    assert passes[0] == windows * (2 if session.batchable else 3), passes
    assert passes[1:] == [2 if session.batchable else 3] * TOKENS, passes
    assert stream["plan_passes"][0] == {"what": "arms", "look": 0} and stream["layers_alive_max"] <= 2

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

    from swtui.core.evidence import metrics
    from swtui.core.errors import Cancelled
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session
    from swtui.core.evidence.arm_states import ArmPlan, ArmState, measure_arms

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
    seen = _stop_at(stream, how, cancel, lambda event, seen: event.layer == 2)
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

    from swtui.core.evidence import metrics
    from swtui.core.model.loading import LoadOptions, load_model
    from swtui.core.edits.session import Session
    from swtui.core.evidence.arm_states import ArmPlan, ArmState, measure_arms

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
