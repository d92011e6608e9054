"""``write_nest_nemo`` / ``load_nest_objective``: NeMo NEST ``.nemo`` files out and back (no NeMo needed)."""

from pathlib import Path

import pytest
import torch

from nestbench.checkpoint import load_nemo, write_nemo
from nestbench.encoder import ConfigError, NestEncoder
from nestbench.pretrain import (
    NEMO_MODEL_TARGET,
    CheckpointMismatchError,
    MultiSpeakerNoiseAugmentation,
    NestObjective,
    load_nest_objective,
    nest_nemo_config,
    write_nest_nemo,
)

NEMO_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "tiny" / "nest_tiny.nemo"
# NeMo's examples/asr/conf/ssl/nest/nest_fast-conformer.yaml, model: block
RECIPE_BLOCKS = [
    "sample_rate", "num_classes", "num_books", "code_dim", "squeeze_single", "mask_position", "train_ds",
    "validation_ds", "preprocessor", "spec_augment", "masking", "quantizer", "encoder", "decoder", "loss", "optim",
]  # fmt: skip


def _encode(encoder: NestEncoder, audio: tuple[torch.Tensor, torch.Tensor]):
    with torch.no_grad():
        return encoder.eval()(*audio)


def test_config_has_nemo_blocks(tmp_path, tiny_objective):
    path = write_nest_nemo(tmp_path / "nest.nemo", tiny_objective(), extra={"nestbench": {"run": "r1"}})
    cfg = load_nemo(path, cache_dir=tmp_path / "cache").config
    assert [k for k in cfg if k in RECIPE_BLOCKS] == RECIPE_BLOCKS
    assert cfg["target"] == NEMO_MODEL_TARGET and cfg["nestbench"] == {"run": "r1"}
    blocks = [b for b in RECIPE_BLOCKS if isinstance(cfg[b], dict) and "_target_" in cfg[b]]
    targets = {b: cfg[b]["_target_"].rsplit(".", 1)[1] for b in blocks}
    assert targets == {
        "preprocessor": "AudioToMelSpectrogramPreprocessor",
        "spec_augment": "SpectrogramAugmentation",
        "masking": "RandomBlockMasking",
        "quantizer": "RandomProjectionVectorQuantizer",
        "encoder": "ConformerEncoder",
        "decoder": "MultiSoftmaxDecoder",
        "loss": "MultiMLMLoss",
    }
    for ds in ("train_ds", "validation_ds"):  # restorable without data: no manifest to read
        assert cfg[ds]["manifest_filepath"] is None and cfg[ds]["noise_manifest"] is None
        assert cfg[ds]["batch_augmentor"]["prob"] == 0.0  # no augmentation given: clean input, as here
    assert cfg["optim"]["sched"]["d_model"] == cfg["encoder"]["d_model"] == 32
    assert cfg["num_classes"] == cfg["quantizer"]["num_classes"] == cfg["decoder"]["num_classes"] == 64
    assert not any(isinstance(v, str) and "${" in v for b in cfg.values() if isinstance(b, dict) for v in b.values())


def test_config_refusals(tiny_objective):
    with pytest.raises(ValueError, match="architecture blocks"):
        nest_nemo_config(tiny_objective(), extra={"encoder": {}})
    with pytest.raises(ValueError, match="sample_rate=8000"):
        nest_nemo_config(tiny_objective(), sample_rate=8000)


def test_encoder_loader_reads_it(audio, tmp_path, tiny_objective):
    objective = tiny_objective()
    path = write_nest_nemo(tmp_path / "nest.nemo", objective)
    loaded = NestEncoder.from_pretrained(path, cache_dir=tmp_path / "cache")
    ours, theirs = _encode(objective.nest, audio), _encode(loaded, audio)
    assert torch.equal(ours.lengths, theirs.lengths)
    for a, b in zip(ours.layers, theirs.layers, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_objective_round_trip_gives_the_same_loss(audio, tmp_path, tiny_objective):
    noise = [torch.randn(20000, generator=torch.Generator().manual_seed(1)) * 0.05]
    augmentation = MultiSpeakerNoiseAugmentation(noise=noise, prob=1.0)
    a = tiny_objective(seed=0, augmentation=augmentation)
    path = write_nest_nemo(tmp_path / "nest.nemo", a)
    b = NestObjective.from_nemo(path, noise=noise, cache_dir=tmp_path / "cache")
    assert b.nest.checkpoint_sha256 and not b.training
    assert b.augmentation.nemo_config() == augmentation.nemo_config()
    for name in ("quantizer", "mask_processor", "decoder", "loss"):
        assert getattr(b, name).nemo_config() == getattr(a, name).nemo_config(), name
    a.eval()
    for x, y in zip(_encode(a.nest, audio).layers, _encode(b.nest, audio).layers, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    out_a = a(*audio, generator=torch.Generator().manual_seed(5))
    out_b = b(*audio, generator=torch.Generator().manual_seed(5))
    assert out_a["n_masked"] == out_b["n_masked"] > 0
    torch.testing.assert_close(out_a["loss"], out_b["loss"], rtol=0, atol=0)
    torch.testing.assert_close(out_a["accuracy"], out_b["accuracy"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="noise"):  # the augmentor mixes noise: a noise set is needed
        load_nest_objective(path, cache_dir=tmp_path / "cache")
    assert load_nest_objective(path, augment=False, cache_dir=tmp_path / "cache").augmentation is None


def test_reads_nemo_saved_nest_checkpoint(tmp_path):
    """NeMo's own ``save_to`` of an ``EncDecDenoiseMaskedTokenPredModel`` (the parity fixture)."""
    objective = load_nest_objective(NEMO_FIXTURE, cache_dir=tmp_path)
    assert objective.quantizer.num_classes == 32 and objective.nest.n_layers == 3
    assert objective.augmentation is None  # train_ds: null
    reference = NestEncoder.from_pretrained(NEMO_FIXTURE, cache_dir=tmp_path)
    audio = (torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1, torch.tensor([16000, 12000]))
    for x, y in zip(_encode(objective.nest, audio).layers, _encode(reference, audio).layers, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    ckpt = load_nemo(NEMO_FIXTURE, cache_dir=tmp_path)
    assert torch.equal(objective.quantizer.codebooks, ckpt.state_dict["quantizer.codebooks"])
    # and written back, it reads the same
    again = load_nest_objective(write_nest_nemo(tmp_path / "again.nemo", objective), cache_dir=tmp_path)
    sd, sd_again = objective.state_dict_for_nemo(), again.state_dict_for_nemo()
    assert sd.keys() == sd_again.keys() and all(torch.equal(sd[k], sd_again[k]) for k in sd)


def test_interpolated_config_is_resolved(tmp_path, tiny_objective):
    objective = tiny_objective()
    cfg = nest_nemo_config(objective)
    cfg["quantizer"]["combine_time_steps"] = "${model.encoder.subsampling_factor}"
    cfg["decoder"]["feat_in"] = "${encoder.d_model}"
    path = write_nemo(tmp_path / "interp.nemo", cfg, objective.state_dict_for_nemo())
    loaded = load_nest_objective(path, cache_dir=tmp_path / "cache")
    assert loaded.quantizer.combine_time_steps == 8 and loaded.decoder.feat_in == 32


def test_other_architecture_is_refused_listing_keys(tmp_path, tiny_objective):
    small, big = tiny_objective(num_classes=64), tiny_objective(num_classes=128)
    sd = big.state_dict_for_nemo()
    del sd["mask_processor.mask_embedding"]
    sd["decoder_ssl.weight"] = torch.zeros(3)
    path = write_nemo(tmp_path / "other.nemo", nest_nemo_config(small), sd)
    with pytest.raises(CheckpointMismatchError) as err:
        load_nest_objective(path, cache_dir=tmp_path / "cache")
    e = err.value
    assert e.missing == ["mask_processor.mask_embedding"] and e.unexpected == ["decoder_ssl.weight"]
    assert [m.split(":")[0] for m in e.mismatched] == [
        "decoder.decoder_layers.0.bias",
        "decoder.decoder_layers.0.weight",
        "quantizer.codebooks",
    ]
    assert "other.nemo" in str(e) and "quantizer.codebooks" in str(e)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"target": "nemo.collections.asr.models.EncDecCTCModelBPE"}, "not a NEST"),
        ({"mask_position": "post_conv"}, "pre_conv"),
        ({"loss_list": {"a": {}}}, "loss_list"),
        ({"quantizer": {"time_ahead": True}}, "time_ahead"),
        ({"decoder": {"new_knob": 1}}, "new_knob"),
        ({"spec_augment": {"time_masks": 2}}, "spec_augment"),
    ],
)
def test_unsupported_configs_are_refused(tmp_path, tiny_objective, change, match):
    objective = tiny_objective()
    cfg = nest_nemo_config(objective)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict) and key != "loss_list":
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = write_nemo(tmp_path / "bad.nemo", cfg, objective.state_dict_for_nemo())
    with pytest.raises(ConfigError, match=match):
        load_nest_objective(path, cache_dir=tmp_path / "cache")
