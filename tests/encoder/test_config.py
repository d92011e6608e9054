"""Reading NeMo config blocks: what loads, and what is refused because it would change the numbers."""

from pathlib import Path

import pytest

from nestbench.checkpoint import load_nemo
from nestbench.encoder import ConfigError, ConformerConfig, MelConfig, NestEncoder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "tiny" / "nest_tiny.nemo"

# The preprocessor and encoder blocks of NeMo's NEST recipe (examples/asr/conf/ssl/nest/nest_fast-conformer.yaml),
# which the released checkpoints carry, with interpolations resolved.
NEST_PREPROCESSOR = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 80,
    "n_fft": 512,
    "log": True,
    "frame_splicing": 1,
    "dither": 0.00001,
    "pad_to": 16,
    "pad_value": 0.0,
}
NEST_ENCODER = {
    "_target_": "nemo.collections.asr.modules.ConformerEncoder",
    "feat_in": 80,
    "feat_out": -1,
    "n_layers": 18,
    "d_model": 512,
    "use_bias": True,
    "subsampling": "dw_striding",
    "subsampling_factor": 8,
    "subsampling_conv_channels": 256,
    "causal_downsampling": False,
    "ff_expansion_factor": 4,
    "self_attention_model": "rel_pos",
    "n_heads": 8,
    "att_context_size": [-1, -1],
    "att_context_style": "regular",
    "xscaling": True,
    "untie_biases": True,
    "pos_emb_max_len": 5000,
    "conv_kernel_size": 9,
    "conv_norm_type": "batch_norm",
    "conv_context_size": None,
    "dropout": 0.1,
    "dropout_pre_encoder": 0.1,
    "dropout_emb": 0.0,
    "dropout_att": 0.1,
    "stochastic_depth_drop_prob": 0.0,
    "stochastic_depth_mode": "linear",
    "stochastic_depth_start_layer": 1,
}
NEST_XL_ENCODER = {**NEST_ENCODER, "n_layers": 24, "d_model": 1024, "xscaling": False}


@pytest.mark.parametrize("encoder", [NEST_ENCODER, NEST_XL_ENCODER], ids=["L", "XL"])
def test_nest_configs_load(encoder):
    mel = MelConfig.from_nemo(NEST_PREPROCESSOR)
    enc = ConformerConfig.from_nemo(encoder)
    assert (mel.features, mel.hop_length) == (80, 160)
    assert (enc.n_layers, enc.d_model, enc.xscaling) == (encoder["n_layers"], encoder["d_model"], encoder["xscaling"])


def test_committed_fixture_loads(tmp_path):
    assert NestEncoder.from_nemo_config(load_nemo(FIXTURE, cache_dir=tmp_path).config).n_layers == 3


@pytest.mark.parametrize(
    ("block", "key", "value"),
    [
        ("encoder", "reduction", "striding"),
        ("encoder", "reduction_position", 5),
        ("encoder", "reduction_factor", 2),
        ("encoder", "global_tokens", 4),
        ("encoder", "global_tokens_spacing", 2),
        ("encoder", "global_attn_separate", True),
        ("preprocessor", "stft_exact_pad", True),
        ("preprocessor", "stft_conv", True),
        ("preprocessor", "nb_augmentation_prob", 0.5),
        ("preprocessor", "use_torchaudio", True),
    ],
)
def test_feature_we_lack_is_refused(block, key, value):
    with pytest.raises(ValueError, match=rf"{block}\.{key}={value!r} is not supported"):
        _load(block, {key: value})


@pytest.mark.parametrize(
    ("block", "extra"),
    [
        ("encoder", {"reduction": None, "reduction_position": None, "reduction_factor": 1, "global_tokens": 0}),
        ("preprocessor", {"stft_exact_pad": False, "stft_conv": False, "nb_augmentation_prob": 0.0}),
    ],
)
def test_feature_we_lack_switched_off_loads(block, extra):
    _load(block, extra)


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match=r"encoder\.linear_attention=True is not supported: an unknown key"):
        _load("encoder", {"linear_attention": True})


def test_harmless_keys_load_with_any_value():
    _load("encoder", {"pos_emb_max_len": 20000, "use_pytorch_sdpa": True, "subsampling_conv_chunking_factor": 4})
    _load("preprocessor", {"use_grads": True, "max_duration": 40.0, "rng": 3})


def _load(block: str, extra: dict):
    if block == "encoder":
        return ConformerConfig.from_nemo({**NEST_ENCODER, **extra})
    return MelConfig.from_nemo({**NEST_PREPROCESSOR, **extra})
