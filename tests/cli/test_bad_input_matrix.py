"""Bad input: each case gives one clear line on stderr and exit code 2, never a traceback."""

import json

import pytest


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """Files that are broken in the ways users break them."""
    import torch
    from transformers import BertConfig, BertLMHeadModel

    root = tmp_path_factory.mktemp("bad")
    (root / "empty_dir").mkdir()
    corrupt = root / "corrupt_st"
    corrupt.mkdir()
    from swtui.core.model.tiny import build_tiny

    model, tok = build_tiny("llama")
    model.config.save_pretrained(corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00\x01 not safetensors at all")
    truncated = root / "truncated_st"
    model.save_pretrained(truncated)
    tok.save_pretrained(truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    (root / "garbage.gguf").write_bytes(b"NOPE" + b"\x00" * 100)
    (root / "truncated.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01" * 40)
    bert = root / "bert"
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, is_decoder=True)
    BertLMHeadModel(cfg).save_pretrained(bert)
    tok.save_pretrained(bert)
    (root / "foreign.json").write_text(json.dumps({"hello": "world"}))
    (root / "future.json").write_text(json.dumps({"kind": "swtui-snapshot", "schema_version": 999}))
    (root / "corrupt.json").write_text("{ not json")
    (root / "a_file").write_text("x")
    return root


CASES = [
    ("nonexistent path", ["scan", "/no/such/model"], "no such file"),
    ("directory without config", ["scan", "{root}/empty_dir"], "config.json"),
    ("unsupported architecture", ["scan", "{root}/bert", "--no-impact"], "no decoder layers"),
    ("corrupt safetensors", ["scan", "{root}/corrupt_st"], "corrupt_st"),
    ("truncated safetensors", ["scan", "{root}/truncated_st"], "truncated_st"),
    ("not a GGUF file", ["scan", "{root}/garbage.gguf"], "not a GGUF file"),
    ("truncated GGUF", ["scan", "{root}/truncated.gguf"], "truncated.gguf"),
    ("hub id not cached (offline)", ["scan", "someorg/not-a-cached-model"], "local Hugging Face cache"),
    ("coordinates: two numbers", ["ablate", "tiny:llama", "--prune", "11,507"], "LAYER,ROW,COL"),
    ("coordinates: letters", ["ablate", "tiny:llama", "--prune", "a,b,c"], "LAYER,ROW,COL"),
    ("coordinates: negative", ["ablate", "tiny:llama", "--prune=-1,2,3"], "negative"),
    ("coordinates: out of range", ["ablate", "tiny:llama", "--prune", "1,5,999"], "out of range"),
    ("scale: nan", ["ablate", "tiny:llama", "--scale", "1,5,17=nan"], "finite"),
    ("scale: inf", ["ablate", "tiny:llama", "--scale", "1,5,17=inf"], "finite"),
    ("scale: text", ["ablate", "tiny:llama", "--scale", "1,5,17=double"], "number"),
    ("bits out of range", ["quant", "tiny:llama", "--bits", "12"], "bits"),
    ("threads: zero", ["scan", "tiny:llama", "--threads", "0"], "1 or more"),
    ("threads: text", ["scan", "tiny:llama", "--threads", "all"], "1 or more"),
    ("block size that does not fit", ["quant", "tiny:llama", "--group", "tile", "--block", "7"], "tile size"),
    ("sweep block too small", ["quant-sweep", "tiny:llama", "--blocks", "1"], "does not fit"),
    ("empty prompt", ["scan", "tiny:llama", "--prompt", "  "], "prompt is empty"),
    ("corrupt snapshot", ["report", "{root}/corrupt.json"], "not valid JSON"),
    ("foreign snapshot", ["report", "{root}/foreign.json"], "not a swtui snapshot"),
    ("future-schema snapshot", ["report", "{root}/future.json"], "upgrade swtui"),
    ("unwritable snapshot directory", ["export", "tiny:llama", "--no-svg", "--out", "{root}/a_file/sub"], "cannot write"),
    ("pickle checkpoint refused", ["scan", "{root}/pickled"], "--allow-pickle"),
    ("unknown tiny architecture", ["scan", "tiny:martian"], "unknown tiny architecture"),
    ("nothing to ablate", ["ablate", "tiny:llama"], "nothing to ablate"),
    ("bad device", ["scan", "tiny:llama", "--device", "tpu"], "--device"),
    ("bad dtype", ["scan", "tiny:llama", "--dtype", "float8"], "--dtype"),
    ("non-integer option", ["scan", "tiny:llama", "--max-rounds", "x"], "--max-rounds"),
    ("--down-proj matching nothing", ["scan", "tiny:llama", "--down-proj", "no.such.*"], "matched no module"),
    ("--down-proj matching several per layer", ["scan", "tiny:llama", "--down-proj", "model.layers.*.mlp.*"],
     "several modules"),
]


@pytest.fixture(scope="module")
def pickled(fixtures):
    from swtui.core.model.tiny import build_tiny

    model, tok = build_tiny("llama")
    import torch

    target = fixtures / "pickled"
    model.config.save_pretrained(target)
    tok.save_pretrained(target)
    torch.save(model.state_dict(), target / "pytorch_model.bin")
    return fixtures / "pickled"


@pytest.mark.parametrize("name,args,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, args, needle, fixtures, pickled, capsys):
    from swtui.cli import main

    args = [a.replace("{root}", str(fixtures)) for a in args]
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("swtui:")]
    assert len(lines) == 1 and needle in lines[0], err


def test_enormous_prompt_is_truncated_with_notice(capsys):
    from swtui.cli import main

    assert main(["scan", "tiny:llama", "--prompt", "word " * 5000, "--json", "--no-impact"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["tokens"]) == 256  # the tiny model's context length


def test_down_proj_override_makes_unknown_architecture_work(fixtures, capsys):
    from swtui.cli import main

    assert main(["scan", str(fixtures / "bert"), "--down-proj", "bert.encoder.layer.*.output.dense",
                 "--json", "--no-impact"]) == 0
    assert len(json.loads(capsys.readouterr().out)["layers"]) == 2


def test_allow_pickle_loads_with_weights_only(pickled, capsys):
    from swtui.cli import main

    assert main(["scan", str(pickled), "--allow-pickle", "--json", "--no-impact"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["candidates"][0]["layer"] == 1 and report["super_weights"] == []  # --no-impact: none judged


def test_local_safetensors_directory(fixtures, tmp_path, capsys):
    from swtui.cli import main
    from swtui.core.model.tiny import build_tiny

    model, tok = build_tiny("gpt2")
    model.save_pretrained(tmp_path / "gpt2-tiny")
    tok.save_pretrained(tmp_path / "gpt2-tiny")
    assert main(["scan", str(tmp_path / "gpt2-tiny"), "--json", "--no-impact"]) == 0
    sw = json.loads(capsys.readouterr().out)["candidates"][0]
    assert (sw["layer"], sw["row"], sw["col"]) == (1, 5, 17)


def test_device_map_auto_on_a_local_directory(tmp_path, capsys):
    """accelerate's big-model dispatch path (on this CPU-only machine everything lands on the CPU)."""
    from swtui.cli import main
    from swtui.core.model.tiny import build_tiny

    model, tok = build_tiny("llama")
    model.save_pretrained(tmp_path / "llama-tiny")
    tok.save_pretrained(tmp_path / "llama-tiny")
    assert main(["scan", str(tmp_path / "llama-tiny"), "--device-map", "auto", "--json", "--no-impact"]) == 0
    sw = json.loads(capsys.readouterr().out)["candidates"][0]
    assert (sw["layer"], sw["row"], sw["col"]) == (1, 5, 17)
