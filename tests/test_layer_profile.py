"""A frozen run's layer profile: the aggregator's own weights as JSON, and a bar chart of them."""

import json
import struct

import pytest
import torch

from nestbench.experiment import EncoderSetup
from nestbench.layer_profile import layer_profile, write_layer_profile
from nestbench.upstream import EncoderInfo, Upstream

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INFO = EncoderInfo(source="tiny.nemo", checkpoint_sha256="0" * 64, n_layers=6, d_model=8, frame_shift=0.08)


def _upstream(**setup) -> Upstream:
    """A cached-features upstream: the aggregator without an encoder, as a frozen run holds it."""
    return Upstream(None, EncoderSetup("tiny.nemo", mode="frozen", **setup), INFO)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("aggregation", ["superb", "nemo"])
def test_json_holds_the_weights_the_aggregator_applies(tmp_path, aggregation):
    upstream = _upstream(aggregation=aggregation, layers="1,3,5", layer_temperature=0.5)
    with torch.no_grad():
        upstream.aggregator.weights.copy_(torch.tensor([0.2, -0.4, 1.3]))
    profile = layer_profile(upstream)
    applied = upstream.aggregator.normalised_weights().tolist()
    assert profile["protocol"] == aggregation and set(profile["weights"]) == {"1", "3", "5"}
    assert [profile["weights"][k] for k in ("1", "3", "5")] == pytest.approx(applied)
    if aggregation == "superb":
        assert sum(profile["weights"].values()) == pytest.approx(1.0) and profile["temperature"] == 0.5
    else:
        assert profile["weights"]["3"] == pytest.approx(-0.4)  # raw, not softmaxed

    data, png = write_layer_profile(profile, tmp_path, "quickstart_sv (sv)")
    assert json.loads(data.read_text()) == profile
    width, height = _png_size(png.read_bytes())
    assert width > 200 and height > 150
    assert b"matplotlib" not in png.read_bytes()


def test_same_profile_gives_the_same_png_bytes(tmp_path):
    profile = layer_profile(_upstream())
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = write_layer_profile(profile, tmp_path / "a", "x")[1].read_bytes()
    assert write_layer_profile(profile, tmp_path / "b", "x")[1].read_bytes() == first


def test_no_profile_without_learned_weights():
    """'last' learns nothing; a fine-tuned upstream aggregates with 'last' too (its runs record None)."""
    assert layer_profile(_upstream(aggregation="last")) is None
