"""Property: any sequence of edits ends bit-identical after restore-all; the ledger never lies."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swtui.core.quant_session import apply_quant_config

from conftest import tiny_session

SESSION = tiny_session("llama")
SESSION.name_super_weight(1, 5, 17)
for coord in ((1, 5, 17), (2, 3, 4), (0, 63, 127), (3, 0, 0)):
    SESSION.name_super_weight(*coord)
    SESSION.find_super_weight(coord).sa_magnitude = 10.0
HASH0 = SESSION.current_hash()
KEYS = [sw.key for sw in SESSION.super_weights]

coords = st.sampled_from(KEYS)
factors = st.sampled_from([0.0, 0.5, -1.0, 1.5, 3.0, 1e-3])
quant_cfgs = st.sampled_from([
    {"method": "rtn", "bits": 4, "group": "tensor"},
    {"method": "rtn", "bits": 3, "group": "block", "block": 256, "keep_super_weights": True},
    {"method": "rtn", "bits": 8, "group": "channel", "clip_z": 3.0},
    {"method": "rtn", "bits": 2, "group": "tile", "block": 16, "keep_super_weights": True, "act_bits": 8},
])
ops = st.one_of(
    st.tuples(st.just("prune"), coords),
    st.tuples(st.just("scale"), coords, factors),
    st.tuples(st.just("restore"), coords),
    st.tuples(st.just("sa"), coords),
    st.tuples(st.just("quantize"), quant_cfgs),
    st.tuples(st.just("full"),),
    st.tuples(st.just("restore_all"),),
)


def expected_value(s, key):
    edit = s.ledger.elements.get(key)
    if edit is None:
        return None
    return 0.0 if edit.op == "prune" else float(edit.pristine * edit.factor)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ops, min_size=1, max_size=8))
def test_random_edit_sequences_restore_bit_exactly(sequence):
    s = SESSION
    try:
        for op in sequence:
            kind = op[0]
            if kind == "prune":
                s.ledger.prune(*op[1])
            elif kind == "scale":
                s.ledger.scale(*op[1], op[2])
            elif kind == "restore":
                s.ledger.restore(*op[1])
            elif kind == "sa":
                s.set_sa_restore(*op[1], on=op[1] not in s.sa_restore)
            elif kind == "quantize":
                apply_quant_config(s, op[1])
            elif kind == "full":
                apply_quant_config(s, None)
            else:
                apply_quant_config(s, None)
                s.ledger.restore_all()
                s.sa_restore.clear()
            # the ledger's idea of the state matches the tensors after every step
            assert s.ledger.verify() == []
            for key in KEYS:
                want = expected_value(s, key)
                if want is not None:
                    assert s.ledger.current_value(*key) == want
            assert bool(s.ledger.tensors) == (s.quant_config is not None)
    finally:
        apply_quant_config(s, None)
        s.ledger.restore_all()
        s.sa_restore.clear()
    assert s.current_hash() == HASH0
    assert s.ledger.count == 0
