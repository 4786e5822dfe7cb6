"""One record per concept: a protocol row is its source record (or is built from it by field name),
so a field added, renamed or reordered in one cannot silently shift or drop a value in the other."""

import dataclasses

import pytest

from swtui.core.detection.layer_stats import LayerStats
from swtui.core.detection.probe import probe_down_proj
from swtui.core.engine import protocol as ev
from swtui.core.engine import wire
from support.builders import tiny_session


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _shared_fields_agree(row, source) -> list[str]:
    """The fields of `row` that `source` also has whose values differ (tuples and lists alike)."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v
    get = source.get if isinstance(source, dict) else lambda n, d=None: getattr(source, n, d)
    missing = object()
    return [f"{n}: row {getattr(row, n)!r} != source {get(n)!r}" for n in _names(type(row))
            if get(n, missing) is not missing and plain(getattr(row, n)) != plain(get(n))]


def test_a_layer_row_is_the_probes_layer_stats_and_the_weight():
    assert issubclass(ev.LayerRow, LayerStats)
    assert _names(ev.LayerRow) == _names(LayerStats) + ["weight"]  # every other field said once, in LayerStats
    s = tiny_session()
    ids = s.encode("Apple Inc. is a worldwide tech company.")
    probe = probe_down_proj(s.model, s.adapter, ids)
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.layers[0].in_max = 0.0
    for stats in probe.layers:
        row = ev.LayerRow.of(stats, weight=0.25)
        assert _shared_fields_agree(row, stats) == [] and row.weight == 0.25
        assert dataclasses.replace(row, weight=None) == ev.LayerRow.of(stats, None)
        # the wire form is unchanged: LayerStats's fields and the weight, flat
        done = ev.ProbeDone([row], 2.5, [], "p")
        assert set(wire.to_data(done)["layers"][0]) == set(_names(LayerStats)) | {"weight"}
        assert wire.from_data(wire.to_data(done)) == done
