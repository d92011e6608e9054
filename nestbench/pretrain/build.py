"""Build the ``NestObjective`` a pretraining spec describes: from scratch, or continuing a NEST checkpoint.

Continuing keeps the checkpoint's quantizer, mask embedding and decoder (its targets and what predicts
them) and applies the spec's training policy (masking rate, block size, loss threshold, augmentation)
on top; a spec that binds other targets than the checkpoint's is refused, as is a checkpoint of another
architecture (``CheckpointMismatchError`` lists the keys).
"""

from __future__ import annotations

import torch

from ..checkpoint import load_nemo
from ..encoder import NestEncoder
from ..validation import BindingError
from .data import NoiseSet, noise_augmentation
from .loss import MultiMLMLoss
from .masking import RandomBlockMasking
from .nemo_export import OPTIONAL_KEYS, load_nest_objective
from .objective import CheckpointMismatchError, NestObjective, check_keys
from .quantizer import RandomProjectionQuantizer
from .setup import NestObjectiveSetup, PretrainExperiment

_NEST_TARGETS = {"num_classes": 8192, "num_books": 1, "code_dim": 16, "dist_fn": "l2"}


def build_objective(
    exp: PretrainExperiment, noise: NoiseSet | None, cache_dir: str | None = None
) -> tuple[NestObjective, str]:
    """The objective in train mode, and the sha256 of the checkpoint it started from."""
    setup = exp.objective
    ckpt = load_nemo(exp.checkpoint, cache_dir=cache_dir)
    if exp.init == "continue":
        if "quantizer" not in ckpt.config:
            _refuse_non_nest(ckpt, setup)
        objective = load_nest_objective(exp.checkpoint, augment=False, cache_dir=cache_dir)
        _check_targets(setup, objective, exp.checkpoint)
        _apply_policy(setup, objective)
        sha = objective.nest.checkpoint_sha256
    else:
        torch.manual_seed(exp.seed)  # encoder init, codebooks, projection, mask embedding, decoder
        encoder = NestEncoder.from_nemo_config(ckpt.config)
        objective = from_scratch(encoder, setup)
        sha = ckpt.sha256
    objective.augmentation = noise_augmentation(noise, **setup.augmentation_kwargs()) if setup.augment_prob else None
    return objective.train(), sha


def from_scratch(encoder: NestEncoder, setup: NestObjectiveSetup) -> NestObjective:
    """A freshly drawn objective around ``encoder`` (draws from the global torch generator)."""
    targets = {**_NEST_TARGETS, **setup.targets()}
    features = encoder.mel_config.features
    factor = encoder.conformer_config.subsampling_factor
    quantizer = RandomProjectionQuantizer(feat_in=features, combine_time_steps=factor, **targets)
    masking = RandomBlockMasking(feat_in=features, **setup.masking_kwargs())
    books = quantizer.num_books
    loss = MultiMLMLoss(combine_time_steps=factor, mask_threshold=setup.mask_threshold, num_decoders=books)
    return NestObjective(encoder, quantizer=quantizer, masking=masking, loss=loss)


def _refuse_non_nest(ckpt, setup: NestObjectiveSetup) -> None:
    """A checkpoint without NEST's SSL parts (an ASR model, a bare encoder) cannot be continued: say
    which keys NEST's model needs that it lacks, or has at another shape, as for any other mismatch."""
    expected = from_scratch(NestEncoder.from_nemo_config(ckpt.config), setup).state_dict_for_nemo()
    check_keys(expected, ckpt.state_dict, f"{ckpt.path} (init = 'continue')", optional=OPTIONAL_KEYS)
    raise CheckpointMismatchError(str(ckpt.path), ["model_config.yaml: quantizer"], [], [])


def _check_targets(setup: NestObjectiveSetup, objective: NestObjective, origin: str) -> None:
    q = objective.quantizer
    differ = {k: (v, getattr(q, k)) for k, v in setup.targets().items() if v != getattr(q, k)}
    if differ:
        said = ", ".join(f"NestObjectiveSetup.{k} = {a!r} (checkpoint: {b!r})" for k, (a, b) in differ.items())
        raise BindingError(
            f"PretrainExperiment.init = 'continue' keeps {origin}'s quantizer, so its targets cannot change: {said}; "
            "leave these unbound (None) to use the checkpoint's",
            tuple(f"NestObjectiveSetup.{k}" for k in differ),
        )


def _apply_policy(setup: NestObjectiveSetup, objective: NestObjective) -> None:
    """The spec's masking and loss values on the checkpoint's modules (its mask embedding is kept)."""
    m = objective.mask_processor
    m.mask_prob, m.block_size, m.max_mask_ratio = setup.mask_prob, setup.block_size, setup.max_mask_ratio
    m.freeze = setup.mask_freeze
    m.mask_embedding.requires_grad_(not setup.mask_freeze and m.mask_value is None)
    objective.loss.mask_threshold = setup.mask_threshold
