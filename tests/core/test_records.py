"""One record per concept: a protocol row is its source record (or is built from it by field name),
so a field added, renamed or reordered in one cannot silently shift or drop a value in the other."""

import dataclasses
import itertools
import types
import typing

import pytest

from swtui.core.detection.layer_stats import LayerStats
from swtui.core.detection.probe import probe_down_proj
from swtui.core.engine import protocol as ev
from swtui.core.engine import wire
from support.builders import tiny_session


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _disagreements(row, source) -> list[str]:
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
        assert _disagreements(row, stats) == [] and row.weight == 0.25
        assert dataclasses.replace(row, weight=None) == ev.LayerRow.of(stats, None)
        # the wire form is unchanged: LayerStats's fields and the weight, flat
        done = ev.ProbeDone([row], 2.5, [], "p")
        assert set(wire.to_data(done)["layers"][0]) == set(_names(LayerStats)) | {"weight"}
        assert wire.from_data(wire.to_data(done)) == done


# -- rows built from their records by field name ------------------------------------------------

def _distinct(cls, **given):
    """A `cls` whose every field not `given` holds a value no other field holds (by its type), so a
    value read from the wrong field shows."""
    from swtui.core.evidence.stats import Ratio
    from swtui.core.verdicts import Verdict

    n = itertools.count(1)

    def value(hint):
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            return value(next(a for a in typing.get_args(hint) if a is not type(None)))
        origin = typing.get_origin(hint) or hint
        if hint is bool:
            return True
        if hint is int:
            return next(n)
        if hint is float:
            return next(n) + 0.5
        if hint is str:
            return f"s{next(n)}"
        if hint in (Ratio, object):  # SuperWeight keeps its ratios as `object`
            k = next(n)
            return Ratio(k + 0.5, k + 0.25, k + 0.75, 100 + k)
        if hint is Verdict:
            return list(Verdict)[next(n) % len(Verdict)]
        if origin in (list, tuple):
            k, args = next(n), typing.get_args(hint)
            return [[k, k + 1, k + 2]] if args and typing.get_origin(args[0]) is list else origin([k, k + 1, k + 2])
        raise TypeError(f"{cls.__name__}: give a value for a field of type {hint!r}")

    hints = typing.get_type_hints(cls)
    return cls(**{f.name: given[f.name] if f.name in given else value(hints[f.name]) for f in dataclasses.fields(cls)})


def _writers():
    from swtui.core.detection.channels import Writer

    carrier = _distinct(Writer)
    return [carrier, _distinct(Writer, layer=carrier.layer + 1, share=-0.75)]  # a carrier and a canceller


def test_every_writer_row_field_is_its_writers_field_of_the_same_name():
    from swtui.core.engine.rows import writer_row

    for w in _writers():
        row = writer_row(w.to_dict())
        assert _disagreements(row, w) == []
        assert set(_names(ev.WriterRow)) <= set(w.to_dict())  # role is a Writer property, said there


def test_every_group_row_field_is_its_groups_field_of_the_same_name():
    from swtui.core.detection.channels import MassiveChannel
    from swtui.core.detection.groups import WriterGroup
    from swtui.core.engine.rows import group_row, writer_row
    from swtui.core.verdicts import Verdict

    channel = _distinct(MassiveChannel, writers=_writers())
    # `massive` and `evidence` share a name but not a shape: the group keeps its channel's dict and
    # its claims' JSON, the row whether it is massive (and that channel's figures) and its claims as rows
    group = _distinct(WriterGroup, verdict=Verdict.GROUP, massive=channel.to_dict(), evidence=None)
    row = group_row(group)
    assert _disagreements(row, dataclasses.replace(group, massive=True, evidence=())) == []
    assert row.sa_remaining == group.sa_remaining  # a property of the group, a field of the row
    assert (row.massive, row.peak, row.persist_layers) == (True, channel.peak, channel.persist_layers)
    assert row.writers == [writer_row(w.to_dict()) for w in channel.writers]
    plain = group_row(dataclasses.replace(group, massive=None))
    assert (plain.massive, plain.peak, plain.persist_layers, plain.writers) == (False, None, None, [])


def test_every_super_weight_row_field_is_its_super_weights_field_of_the_same_name():
    from swtui.core.edits.session import SuperWeight
    from swtui.core.engine.rows import super_weight_rows

    s = tiny_session()
    key = (1, 2, 3)  # a weight of the tiny model
    # `provisional` and `evidence`: while measuring, the row's verdict-to-be and its claim as a row
    sw = _distinct(SuperWeight, layer=key[0], row=key[1], col=key[2], expert=None, control_key=(1, 2, 3),
                   super_expert=None, provisional=None, evidence=None)
    s.super_weights[:] = [sw]
    row, = super_weight_rows(s)
    assert _disagreements(row, sw) == []
    assert (row.current, row.measuring, row.provisional, row.evidence) == (
        s.ledger.current_value(*sw.key), False, None, None)


def test_a_row_built_by_name_refuses_a_source_without_one_of_its_fields():
    from swtui.core.engine.rows import by_name

    writer = _writers()[0].to_dict()
    del writer["share"]
    with pytest.raises(KeyError, match="share"):
        by_name(ev.WriterRow, writer)
    assert by_name(ev.WriterRow, writer, share=0.5).share == 0.5


#: each protocol row made from a record, and the test above that holds it to that record
GUARDED = {"LayerRow": test_a_layer_row_is_the_probes_layer_stats_and_the_weight,
           "GroupRow": test_every_group_row_field_is_its_groups_field_of_the_same_name,
           "WriterRow": test_every_writer_row_field_is_its_writers_field_of_the_same_name,
           "SuperWeightRow": test_every_super_weight_row_field_is_its_super_weights_field_of_the_same_name}
#: rows made from a claim's JSON (`plan.ClaimResult.to_json`, by `rows.evidence_row`), not from a record
FROM_JSON = {"ArmRow", "EvidenceRow"}


def test_every_protocol_row_is_guarded_here():
    """A new row in `payloads` comes with its guard (or a word on why it has no source record)."""
    from swtui.core.engine import payloads

    rows = {name for name, cls in vars(payloads).items()
            if dataclasses.is_dataclass(cls) and cls.__module__ == payloads.__name__}
    assert rows == set(GUARDED) | FROM_JSON
