"""Trainable building blocks for task adapters on top of encoder features."""

from .beam_search import beam_search, greedy_decode
from .text_decoder import DecoderState, TransformerTextDecoder, sequence_loss, teacher_forcing_batch

__all__ = [
    "DecoderState",
    "TransformerTextDecoder",
    "beam_search",
    "greedy_decode",
    "sequence_loss",
    "teacher_forcing_batch",
]
