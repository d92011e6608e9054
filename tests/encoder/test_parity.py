"""nestbench vs real NeMo 3.0.0 outputs (fixture made by tools/make_parity_fixture.py)."""

from pathlib import Path

import pytest
import torch

from nestbench.checkpoint import load_nemo
from nestbench.encoder import NestEncoder
from nestbench.encoder.mel import slaney_mel_filterbank
from nestbench.testing.parity import compare_with_reference

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "tiny"
TOL = 1e-4


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return compare_with_reference(FIXTURE, cache_dir=tmp_path_factory.mktemp("cache"))


def test_lengths_match_nemo(report):
    assert report.lengths_match


def test_mel_features_match_nemo(report):
    assert report.mel_single <= TOL
    assert report.mel_batch <= TOL


def test_every_layer_matches_nemo_single_and_batched(report):
    assert report.layers_single <= TOL
    assert len(report.per_layer_batch) == 3
    assert max(report.per_layer_batch) <= TOL


def test_own_window_and_filterbank_equal_nemos(tmp_path):
    """Checkpoints without the buffers fall back to ours: they must equal NeMo's (librosa's) to fp32 rounding."""
    ckpt = load_nemo(next(FIXTURE.glob("*.nemo")), cache_dir=tmp_path)
    model = NestEncoder.from_nemo_config(ckpt.config)
    theirs_fb = ckpt.state_dict["preprocessor.featurizer.fb"]
    theirs_win = ckpt.state_dict["preprocessor.featurizer.window"]
    ours_fb = slaney_mel_filterbank(model.mel_config).unsqueeze(0)
    assert ours_fb.shape == theirs_fb.shape
    assert torch.allclose(ours_fb, theirs_fb, atol=1e-6, rtol=1e-4)
    assert torch.allclose(model.preprocessor.window, theirs_win, atol=1e-7)
