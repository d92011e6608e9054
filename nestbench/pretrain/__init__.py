"""NEST's self-supervised objective (NeMo's NEST / BEST-RQ recipe) as standalone PyTorch modules."""

from .augmentation import MultiSpeakerNoiseAugmentation
from .decoder import MultiSoftmaxDecoder
from .loss import MaskedTokenLossOutput, MultiMLMLoss
from .masking import RandomBlockMasking
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
]
