"""Pure-PyTorch NEST encoder: NeMo's mel front end + FastConformer, NeMo-exact, no NeMo needed."""

from .config import ConfigError, ConformerConfig, MelConfig
from .conformer import ConformerEncoder
from .mel import MelSpectrogram
from .model import EncoderOutput, NestEncoder

__all__ = [
    "ConfigError",
    "ConformerConfig",
    "ConformerEncoder",
    "EncoderOutput",
    "MelConfig",
    "MelSpectrogram",
    "NestEncoder",
]
