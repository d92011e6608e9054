"""How layers are combined: SUPERB softmax weights (with a temperature), NeMo raw weights, last layer."""

import pytest
import torch

from nestbench.upstream import LayerAggregator

LAYERS = torch.stack([torch.full((2, 3, 4), float(i)) for i in range(3)])  # layer i holds the value i


def test_superb_starts_as_the_mean_and_temperature_sharpens_the_mix():
    agg = LayerAggregator(3, 4, "superb")
    assert torch.allclose(agg(LAYERS), torch.full((2, 3, 4), 1.0))  # equal weights: mean of 0, 1, 2
    with torch.no_grad():
        agg.weights.copy_(torch.tensor([0.0, 0.0, 1.0]))
    cold = LayerAggregator(3, 4, "superb", temperature=0.25)
    with torch.no_grad():
        cold.weights.copy_(agg.weights)
    assert cold.normalised_weights()[2] > agg.normalised_weights()[2] > 1 / 3
    assert torch.allclose(cold.normalised_weights().sum(), torch.tensor(1.0))
    expected = float((cold.normalised_weights().detach() * torch.arange(3.0)).sum())
    assert torch.allclose(cold(LAYERS), torch.full((2, 3, 4), expected))


def test_nemo_weights_are_raw_and_last_is_the_last_layer():
    assert torch.allclose(LayerAggregator(3, 4, "nemo")(LAYERS), torch.full((2, 3, 4), 1.0))
    last = LayerAggregator(3, 4, "last")
    assert torch.equal(last(LAYERS), LAYERS[-1]) and not last.weights.requires_grad


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_temperature_must_be_positive(bad):
    with pytest.raises(ValueError, match="layer_temperature"):
        LayerAggregator(3, 4, "superb", temperature=bad)
