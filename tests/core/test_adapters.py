import pytest

from swtui.core.model.adapters import ModelAdapter
from swtui.core.errors import UnsupportedArchitecture, UserInputError
from swtui.core.model.tiny import TINY_ARCHS, build_tiny

EXPECTED = {
    "llama": ("model.layers.0.mlp.down_proj", False),
    "gemma3": ("model.layers.0.mlp.down_proj", False),
    "gpt2": ("transformer.h.0.mlp.c_proj", True),
    "phi3": ("model.layers.0.mlp.down_proj", False),
    "qwen2": ("model.layers.0.mlp.down_proj", False),
    "gpt_neox": ("gpt_neox.layers.0.mlp.dense_4h_to_h", False),
    "opt": ("model.decoder.layers.0.fc2", False),
}


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_sites_and_orientation(arch):
    model, _ = build_tiny(arch, plant=None)
    adapter = ModelAdapter(model)
    assert adapter.n_layers == 4
    name, transposed = EXPECTED[arch]
    site = adapter.site(0)
    assert site.down_name == name and site.transposed is transposed
    # row indexes the hidden size (output), col the intermediate size (input), whatever the layout
    assert (site.out_features, site.in_features) == (64, 128)
    assert site.index_of(3, 100) == ((100, 3) if transposed else (3, 100))


def test_coordinates_are_checked():
    model, _ = build_tiny("llama", plant=None)
    adapter = ModelAdapter(model)
    for coords in ((4, 0, 0), (0, 64, 0), (0, 0, 128), (-1, 0, 0)):
        with pytest.raises(UserInputError):
            adapter.check_coords(*coords)


def test_unknown_architecture_names_what_it_looked_for():
    import torch

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4))])

    with pytest.raises(UnsupportedArchitecture) as exc:
        ModelAdapter(Odd())
    assert "mlp.down_proj" in str(exc.value) and "--down-proj" in str(exc.value)
    adapter = ModelAdapter(Odd(), down_proj="blocks.*.1")
    assert adapter.n_layers == 1 and adapter.site(0).out_features == 4 and adapter.site(0).in_features == 8


def test_pattern_that_matches_nothing():
    model, _ = build_tiny("llama", plant=None)
    with pytest.raises(UnsupportedArchitecture):
        ModelAdapter(model, down_proj="nothing.*.here")
