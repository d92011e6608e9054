"""NEST's self-supervised objective (NeMo's NEST / BEST-RQ recipe) as standalone PyTorch modules."""

from .augmentation import MultiSpeakerNoiseAugmentation
from .decoder import MultiSoftmaxDecoder
from .loss import MaskedTokenLossOutput, MultiMLMLoss
from .masking import RandomBlockMasking
from .nemo_export import load_nest_objective, nest_nemo_config, nest_objective_from_config, write_nest_nemo
from .objective import NEMO_MODEL_TARGET, CheckpointMismatchError, NestBatch, NestObjective
from .quantizer import RandomProjectionQuantizer

__all__ = [
    "NEMO_MODEL_TARGET",
    "CheckpointMismatchError",
    "MaskedTokenLossOutput",
    "MultiMLMLoss",
    "MultiSoftmaxDecoder",
    "MultiSpeakerNoiseAugmentation",
    "NestBatch",
    "NestObjective",
    "RandomBlockMasking",
    "RandomProjectionQuantizer",
    "load_nest_objective",
    "nest_nemo_config",
    "nest_objective_from_config",
    "write_nest_nemo",
]
