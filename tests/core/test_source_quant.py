"""The source's own quantization: read at load, carried by the one ModelInfo, said where a
quantization experiment's numbers appear."""

from __future__ import annotations

import numpy as np
import pytest

from swtui.core.model import source_quant as sq


def _write_gguf(path, tensors: dict):  # name -> (float array, gguf.GGMLQuantizationType)
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    for name, (data, qtype) in tensors.items():
        if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(name, data.astype(np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_a_gguf_with_two_tensor_types_names_the_down_projections_type(tmp_path):
    """The general case: the down projections in Q8_0, everything else F16 (more weights)."""
    import gguf

    rng = np.random.default_rng(0)
    T = gguf.GGMLQuantizationType
    path = tmp_path / "two-types.gguf"
    _write_gguf(path, {
        "token_embd.weight": (rng.standard_normal((64, 256)).astype(np.float32), T.F16),
        "blk.0.ffn_up.weight": (rng.standard_normal((64, 128)).astype(np.float32), T.F16),
        "blk.0.ffn_down.weight": (rng.standard_normal((32, 64)).astype(np.float32), T.Q8_0),
    })
    found = sq.from_gguf(path)
    assert found.format == "gguf"
    assert found.down_type == "Q8_0" and found.bits == 8 and found.block == 32
    assert [(t.type, t.weights) for t in found.types] == [("F16", 64 * 256 + 64 * 128), ("Q8_0", 32 * 64)]
    assert found.quantized and "Q8_0" in found.label()
    assert sq.from_json(sq.to_json(found)) == found


def test_a_float_gguf_is_not_quantized(tmp_path):
    import gguf

    path = tmp_path / "float.gguf"
    _write_gguf(path, {"blk.0.ffn_down.weight": (np.ones((8, 32), np.float32), gguf.GGMLQuantizationType.F32)})
    found = sq.from_gguf(path)
    assert not found.quantized and found.down_type == "F32"
    assert found.confound(4, 32) is None and found.default_bits() == 4


@pytest.mark.parametrize("config, expect", [
    ({}, ("float", None, None)),
    ({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}},
     ("nf4", 4, 64)),
    ({"quantization_config": {"quant_method": "bitsandbytes", "load_in_8bit": True}}, ("int8", 8, None)),
    ({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}, ("int4", 4, 128)),
    ({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}, ("int4", 4, 128)),
])
def test_a_checkpoint_says_its_quantization_in_its_config(config, expect):
    found = sq.from_hf_config(config)
    assert (found.down_type, found.bits, found.block) == expect


def test_the_confound_is_said_for_as_many_bits_or_more_and_only_the_own_block_reproduces_the_grid():
    q41 = sq.SourceQuant(format="gguf", down_type="Q4_1", bits=4, block=32)
    assert "reproduces its grid" in q41.confound(4, 32)
    assert "compound" in q41.confound(4, 16)  # a 16-block's min/max is not the 32-block's: re-rounded
    assert "compound" in q41.confound(5, 32)  # more levels: re-rounded onto another grid
    assert "compound" in sq.SourceQuant(format="gguf", down_type="Q4_0", bits=4, block=32).confound(4, 32)  # symmetric
    assert "compound" in q41.confound(4, 1024) and "compound" in q41.confound(4, None)
    assert "compound" in q41.confound(8, 64)
    assert q41.confound(3, 1024) is None  # below the source's bits: quantizes for real
    assert q41.default_bits() == 3  # the paper's W4 is no experiment on a Q4 source
    assert sq.SourceQuant(format="gguf", down_type="Q8_0", bits=8, block=32).default_bits() == 4


@pytest.mark.demo
def test_the_demo_reports_its_source_as_q4_1_in_the_model_description(demo_session):
    info = demo_session.info()
    assert info.source_quant.down_type == "Q4_1" and info.source_quant.bits == 4 and info.source_quant.block == 32
    assert info.to_json()["source_quant"]["down_type"] == "Q4_1"


def test_the_reproduced_grid_is_what_rtn_really_does_on_gguf_quantized_weights():
    """The claim behind "reproduces its grid", checked with gguf's own quantizers and swtui's RTN:
    Q4_1 weights come back bit for bit from naive W4 RTN in blocks of 32 and change in blocks of
    16; Q4_0 (symmetric) weights change even in blocks of 32."""
    import gguf
    import torch

    from swtui.core.quant.rtn import rtn

    T = gguf.GGMLQuantizationType
    w = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)
    for qtype, block, same in ((T.Q4_1, 32, True), (T.Q4_1, 16, False), (T.Q4_0, 32, False)):
        source = torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(w, qtype), qtype).copy())
        again = rtn(source, 4, "block", block, None)
        assert torch.equal(again, source) is same, (qtype.name, block)
        src = sq.SourceQuant(format="gguf", down_type=qtype.name, bits=4, block=32)
        assert ("reproduces" in src.confound(4, block)) is same


def test_the_coarsest_grid_decides_and_mxfp4_is_4_bit(tmp_path):
    """Like a Q4_K_M file (down projections in a finer type than the rest; gguf's Python side cannot
    write K-quants, so Q8_0 and Q4_0 here): W4 is confounded, the default drops to W3."""
    import gguf

    rng = np.random.default_rng(1)
    T = gguf.GGMLQuantizationType
    path = tmp_path / "mixed.gguf"
    _write_gguf(path, {"blk.0.ffn_up.weight": (rng.standard_normal((4, 512)).astype(np.float32), T.Q4_0),
                       "blk.0.ffn_down.weight": (rng.standard_normal((4, 256)).astype(np.float32), T.Q8_0)})
    found = sq.from_gguf(path)
    assert found.down_type == "Q8_0" and (found.bits, found.block, found.grid_type) == (4, 32, "Q4_0")
    assert found.default_bits() == 3 and "compound" in found.confound(4, 4096)
    assert "Q4_0 (down projections Q8_0)" in found.label()
    assert sq._gguf_bits("MXFP4") == 4
