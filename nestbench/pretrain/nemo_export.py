"""NEST objectives to and from ``.nemo`` files that NeMo's ``EncDecDenoiseMaskedTokenPredModel`` restores.

Why: a model pretrained with nestbench should be usable wherever a NeMo NEST checkpoint is (NeMo's
``restore_from``, fine-tuning recipes, nestbench's own ``NestEncoder.from_pretrained``), and a NeMo
NEST checkpoint should continue pretraining here with *its* quantizer (new codebooks = new targets).

``model_config.yaml`` follows NeMo's ``examples/asr/conf/ssl/nest/nest_fast-conformer.yaml`` block
for block, with every ``${model...}`` interpolation written out. The data blocks are what NeMo
needs to *restore* the model: ``ModelPT.__init__`` skips data set-up while restoring, so with
``manifest_filepath: null`` no manifest is ever read (NeMo 3.0's ``setup_training_data`` on these
blocks fails with an ``AttributeError``: training in NeMo means giving it a manifest, as its recipe's
``???`` does). ``optim`` is the recipe's (AdamW, Noam) sized to the encoder. Checked against NeMo 3.0
with ``tools/check_ssl_nemo.py``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ..checkpoint import load_nemo, write_nemo
from ..encoder import ConfigError, NestEncoder
from .augmentation import MultiSpeakerNoiseAugmentation, NoiseSource
from .decoder import MultiSoftmaxDecoder
from .loss import MultiMLMLoss
from .masking import RandomBlockMasking
from .objective import NEMO_MODEL_TARGET, NestObjective, check_keys
from .quantizer import RandomProjectionQuantizer

# blocks that decide the architecture or the targets: ``extra`` may not replace them
_ARCHITECTURE_KEYS = (
    "target", "sample_rate", "num_classes", "num_books", "code_dim", "squeeze_single", "mask_position",
    "preprocessor", "spec_augment", "masking", "quantizer", "encoder", "decoder", "loss",
)  # fmt: skip
# top-level keys of NeMo's SSL models that switch on features NEST's objective does not have
_UNSUPPORTED_TOP_LEVEL = ("loss_list", "dropout_features", "dropout_features_q", "feature_penalty")
# the preprocessor buffers nestbench recomputes when a checkpoint lacks them (see NestEncoder)
OPTIONAL_KEYS = ("preprocessor.featurizer.window", "preprocessor.featurizer.fb")

# per part: (class, NeMo class name, keys that cannot change the numbers, keys accepted only at NeMo's value)
_PARTS: dict[str, tuple[type, str, set[str], dict[str, Any]]] = {
    "quantizer": (RandomProjectionQuantizer, "RandomProjectionVectorQuantizer", {"_target_"}, {"time_ahead": False}),
    "masking": (RandomBlockMasking, "RandomBlockMasking", {"_target_"}, {}),
    "decoder": (MultiSoftmaxDecoder, "MultiSoftmaxDecoder", {"_target_", "init_mode"}, {}),
    "loss": (MultiMLMLoss, "MultiMLMLoss", {"_target_"}, {}),
}
_PART_ARGS = {
    "quantizer": ("feat_in", "code_dim", "num_classes", "num_books", "dist_fn", "freeze", "squeeze_single",
                  "combine_time_steps"),
    "masking": ("feat_in", "mask_prob", "block_size", "freeze", "allow_overlap", "max_mask_ratio",
                "short_block_size", "mask_value"),
    "decoder": ("feat_in", "num_classes", "num_decoders", "use_bias", "squeeze_single"),
    "loss": ("combine_time_steps", "mask_threshold", "num_decoders", "squeeze_single"),
}  # fmt: skip
_AUGMENTOR_ARGS = (
    "prob", "noise_ratio", "min_r_speech", "max_r_speech", "min_r_noise", "max_r_noise", "min_mix_rate",
    "max_mix_rate", "min_num_segments", "max_num_segments", "min_num_speakers", "max_num_speakers",
)  # fmt: skip


# -- writing ----------------------------------------------------------------------------------------
def _data_block(sample_rate: int, augmentor: dict, *, train: bool) -> dict:
    """NeMo's ``train_ds``/``validation_ds`` with no manifest: restorable, never read."""
    block = {
        "manifest_filepath": None,
        "noise_manifest": None,
        "sample_rate": sample_rate,
        "batch_size": 8,
        "shuffle": train,
        "num_workers": 8,
        "pin_memory": True,
        "use_start_end_token": False,
    }
    if train:
        block.update(
            trim_silence=False, max_duration=60.0, min_duration=1.0, drop_last=True, is_concat=False,
            concat_sampling_technique="temperature", concat_sampling_temperature=1.0, is_tarred=False,
            tarred_audio_filepaths=None, shuffle_n=2048, bucketing_strategy="synced_randomized",
            bucketing_batch_size=None,
        )  # fmt: skip
    else:
        block.update(max_duration=60.0, min_duration=1.0)
    block["batch_augmentor"] = dict(augmentor)
    return block


def nest_nemo_config(objective: NestObjective, *, sample_rate: int = 16000, extra: dict | None = None) -> dict:
    """The complete ``model_config.yaml`` of ``write_nest_nemo`` (NeMo's NEST recipe layout).

    Without an augmentation the data blocks carry NeMo's augmentor with ``prob: 0`` (the encoder sees
    the clean input, as here). ``extra`` adds or replaces top-level keys other than the architecture's.
    """
    if sample_rate != objective.nest.sample_rate:
        raise ValueError(f"sample_rate={sample_rate} but the encoder's front end runs at {objective.nest.sample_rate}")
    extra = dict(extra or {})
    clash = sorted(k for k in extra if k in _ARCHITECTURE_KEYS)
    if clash:
        raise ValueError(f"extra may not replace the architecture blocks {clash}")
    base = objective.nemo_config()
    base.pop("train_ds", None)
    augmentor = (objective.augmentation or MultiSpeakerNoiseAugmentation(prob=0.0)).nemo_config()
    conf = objective.nest.conformer_config
    cfg = {k: base[k] for k in ("sample_rate", "num_classes", "num_books", "code_dim", "squeeze_single")}
    cfg["mask_position"] = base["mask_position"]
    cfg["train_ds"] = _data_block(sample_rate, augmentor, train=True)
    cfg["validation_ds"] = _data_block(sample_rate, augmentor, train=False)
    for block in ("preprocessor", "spec_augment", "masking", "quantizer", "encoder", "decoder", "loss"):
        cfg[block] = copy.deepcopy(base[block])
    cfg["preprocessor"]["sample_rate"] = sample_rate
    cfg["optim"] = {
        "name": "adamw",
        "lr": 5.0,
        "betas": [0.9, 0.98],
        "weight_decay": 1e-3,
        "sched": {
            "name": "NoamAnnealing",
            "d_model": conf.d_model,
            "warmup_steps": 25000,
            "warmup_ratio": None,
            "min_lr": 1e-6,
        },
    }
    cfg["target"] = NEMO_MODEL_TARGET
    cfg.update(copy.deepcopy(extra))
    return cfg


def write_nest_nemo(
    path: str | Path, objective: NestObjective, *, sample_rate: int = 16000, extra: dict | None = None
) -> Path:
    """Write ``objective`` (encoder, front end, quantizer, mask embedding, decoder) as a NeMo NEST ``.nemo``."""
    return write_nemo(
        path, nest_nemo_config(objective, sample_rate=sample_rate, extra=extra), objective.state_dict_for_nemo()
    )


# -- reading ----------------------------------------------------------------------------------------
_INTERPOLATION = re.compile(r"^\$\{(?:model\.)?([A-Za-z0-9_.]+)\}$")


def _resolve(value: Any, root: dict, depth: int = 0) -> Any:
    """Write out ``${model.a.b}`` / ``${a.b}`` references (configs saved without ``OmegaConf.resolve``)."""
    if isinstance(value, dict):
        return {k: _resolve(v, root, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, depth) for v in value]
    if isinstance(value, str) and (m := _INTERPOLATION.match(value.strip())):
        if depth > 8:
            raise ConfigError(f"config interpolation {value!r} does not resolve (a cycle?)")
        node: Any = root
        for part in m.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"config interpolation {value!r} points at nothing")
            node = node[part]
        return _resolve(node, root, depth + 1)
    return value


def _build_part(name: str, cfg: Any) -> Any:
    cls, nemo_name, harmless, default_only = _PARTS[name]
    if not isinstance(cfg, dict):
        raise ConfigError(f"model config has no '{name}' block")
    target = cfg.get("_target_", "")
    if target and not str(target).endswith(nemo_name):
        raise ConfigError(f"{name}._target_={target!r}: only {nemo_name} is supported")
    allowed = _PART_ARGS[name]
    for key, value in cfg.items():
        if key in default_only:
            if value != default_only[key]:
                raise ConfigError(f"{name}.{key}={value!r} is not supported (only {default_only[key]!r})")
        elif key not in allowed and key not in harmless:
            raise ConfigError(f"{name}.{key}={value!r} is not supported: an unknown key may change the objective")
    return cls(**{k: v for k, v in cfg.items() if k in allowed})


def _augmentation_from_config(cfg: dict, noise: NoiseSource | None) -> MultiSpeakerNoiseAugmentation | None:
    train_ds = cfg.get("train_ds") or {}
    block = train_ds.get("batch_augmentor") if isinstance(train_ds, dict) else None
    if not block or float(block.get("prob", 0.0)) == 0.0:
        return None
    target = block.get("_target_", "")
    if target and not str(target).endswith("MultiSpeakerNoiseAugmentation"):
        raise ConfigError(f"train_ds.batch_augmentor._target_={target!r}: only MultiSpeakerNoiseAugmentation")
    unknown = sorted(k for k in block if k not in _AUGMENTOR_ARGS and k != "_target_")
    if unknown:
        raise ConfigError(f"train_ds.batch_augmentor keys {unknown} are not supported")
    try:
        return MultiSpeakerNoiseAugmentation(noise=noise, **{k: block[k] for k in _AUGMENTOR_ARGS if k in block})
    except ValueError as exc:
        raise ValueError(
            f"the checkpoint's train_ds.batch_augmentor needs a noise set ({exc}); pass noise=..., or augment=False"
        ) from exc


def nest_objective_from_config(
    config: dict, *, noise: NoiseSource | None = None, augment: bool = True
) -> NestObjective:
    """A freshly initialised ``NestObjective`` shaped as a NeMo NEST ``model_config`` says.

    Refused (``ConfigError``): another model class, post-conv masking, NeMo features NEST's recipe does
    not use, and unknown part keys. ``augment=False`` drops the config's batch augmentor.
    """
    cfg = _resolve(dict(config), dict(config))
    target = cfg.get("target", NEMO_MODEL_TARGET)
    if not str(target).endswith(("EncDecDenoiseMaskedTokenPredModel", "EncDecMaskedTokenPredModel")):
        raise ConfigError(f"model target {target!r} is not a NEST (masked token prediction) model")
    if cfg.get("mask_position", "pre_conv") != "pre_conv":
        raise ConfigError(f"mask_position={cfg['mask_position']!r}: only 'pre_conv' (NEST's) is supported")
    used = sorted(k for k in _UNSUPPORTED_TOP_LEVEL if k in cfg and cfg[k] is not None)
    if used:
        raise ConfigError(f"config keys {used} switch on features NEST's objective does not have")
    spec = cfg.get("spec_augment") or {}
    if spec.get("freq_masks", 0) or spec.get("time_masks", 0):
        raise ConfigError("spec_augment with masks is not supported (NEST's recipe sets freq_masks = time_masks = 0)")
    encoder = NestEncoder.from_nemo_config(cfg)
    parts = {name: _build_part(name, cfg.get(name)) for name in _PARTS}
    augmentation = _augmentation_from_config(cfg, noise) if augment else None
    return NestObjective(
        encoder,
        quantizer=parts["quantizer"],
        masking=parts["masking"],
        decoder=parts["decoder"],
        loss=parts["loss"],
        augmentation=augmentation,
    )


def load_nest_objective(
    source: str | Path,
    *,
    noise: NoiseSource | None = None,
    augment: bool = True,
    cache_dir: str | Path | None = None,
) -> NestObjective:
    """Rebuild a ``NestObjective`` from a NEST ``.nemo`` (ours or NeMo's), in eval mode.

    Every weight must fit: a checkpoint of another architecture is refused with a
    ``CheckpointMismatchError`` listing the missing, unexpected and shape-mismatched keys (only the
    preprocessor's window/filterbank may be absent; nestbench recomputes them).
    """
    ckpt = load_nemo(source, cache_dir=cache_dir)
    objective = nest_objective_from_config(ckpt.config, noise=noise, augment=augment)
    expected = objective.state_dict_for_nemo()
    given = ckpt.state_dict
    check_keys(expected, given, str(ckpt.path), optional=OPTIONAL_KEYS)
    objective.load_nemo_state_dict(given, origin=str(ckpt.path))
    objective.nest.checkpoint_sha256 = ckpt.sha256
    objective.nest.source = str(source)
    return objective.eval()
