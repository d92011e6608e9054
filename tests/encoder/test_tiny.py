"""make_tiny_nest names an encoder while a spec is parsed; resolving the name builds it, once."""

from pathlib import Path

import pytest
import torch

from nestbench.checkpoint import CheckpointError, checkpoint_status, load_nemo, resolve_checkpoint
from nestbench.encoder.tiny import make_tiny_nest, tiny_nest_args
from nestbench.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = sorted((ROOT / "experiments" / "quickstart").glob("*.gin"))


@pytest.mark.parametrize("spec", QUICKSTART, ids=lambda p: p.name)
def test_parsing_a_spec_writes_nothing_and_leaves_the_rng(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    if spec.name == "pretrain.gin":  # a `nestbench pretrain` spec: the encoder is its checkpoint
        checkpoint = load_spec(spec, root="PretrainExperiment").experiment.checkpoint
    else:
        checkpoint = load_spec(spec).experiment.encoder.checkpoint
    assert torch.equal(torch.random.get_rng_state(), before)
    assert Path(checkpoint).parent == tmp_path / "cache" / "tiny"
    assert not (tmp_path / "cache").exists()


def test_resolving_builds_once_with_the_same_weights(tmp_path):
    ref = make_tiny_nest(tmp_path, d_model=32, n_layers=1, n_heads=2, subsampling_conv_channels=16, seed=3)
    before = torch.random.get_rng_state()
    path = resolve_checkpoint(ref)
    assert torch.equal(torch.random.get_rng_state(), before)
    built = path.stat()
    assert checkpoint_status(ref) == (path, None) and resolve_checkpoint(ref) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)  # not rebuilt
    first = load_nemo(ref, cache_dir=tmp_path / "c1")
    elsewhere = load_nemo(
        make_tiny_nest(tmp_path / "other", d_model=32, n_layers=1, n_heads=2, subsampling_conv_channels=16, seed=3),
        cache_dir=tmp_path / "c2",
    )
    assert first.sha256 == elsewhere.sha256  # a function of the name only
    assert first.config["encoder"]["d_model"] == 32 and first.config["encoder"]["n_layers"] == 1


def test_name_encodes_every_argument(tmp_path):
    args = dict(
        d_model=48,
        n_layers=3,
        n_heads=2,
        subsampling_conv_channels=8,
        ff_expansion_factor=2,
        conv_kernel_size=5,
        dropout=0.05,
        seed=7,
    )
    assert tiny_nest_args(make_tiny_nest(tmp_path, **args)) == args


@pytest.mark.parametrize("name", ["tiny_nest_d096_l2_h4_c64_f4_k9_p0_s0.nemo", "tiny_nest_d96_l2.nemo", "other.nemo"])
def test_other_missing_files_are_not_built(tmp_path, name):
    with pytest.raises(CheckpointError, match="is not a file, folder or hub id"):
        resolve_checkpoint(str(tmp_path / "tiny" / name))
    assert not (tmp_path / "tiny").exists()
