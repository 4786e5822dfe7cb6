"""`swtui compare` with variants given as JSON on the command line, on a tiny model in-process."""

import json

import pytest

from swtui.cli import main
from swtui.cli.quant import parse_variant
from swtui.core.errors import UserInputError
from swtui.core.quant.config import QuantConfig, Variant


def test_a_json_variant_becomes_a_typed_config_and_a_bad_one_is_refused():
    v = Variant.from_dict(parse_variant('naive={"bits": 3, "group": "block", "block": 64}'))
    assert v == Variant("naive", QuantConfig(bits=3, group="block", block=64))
    assert Variant.from_dict(parse_variant("fp=full")).config is None
    with pytest.raises(UserInputError, match="not JSON"):
        parse_variant("x={bits: 3}")


def test_compare_runs_json_variants_and_says_the_float_source_confounds_nothing(capsys):
    assert main(["compare", "tiny:llama", "--variant", 'naive={"bits": 4}', "--variant", "fp=full",
                 "--json", "--max-new-tokens", "2", "--no-impact"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in report["variants"]] == ["naive", "fp"]
    assert report["variants"][0]["config"]["bits"] == 4 and report["variants"][1]["config"] is None
    assert set(report["results"]) == {"baseline", "naive", "fp"}
    assert report["results"]["fp"]["perplexity"] == pytest.approx(report["results"]["baseline"]["perplexity"])
    assert report["confounds"] == {"naive": None, "fp": None}  # a float model: nothing to confound
