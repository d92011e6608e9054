"""Text tokenizers for the task adapters' decoders (targets are generated as text)."""

from .tokenizer import CharTokenizer, SentencePieceTokenizer, Tokenizer, load_tokenizer

__all__ = ["CharTokenizer", "SentencePieceTokenizer", "Tokenizer", "load_tokenizer"]
