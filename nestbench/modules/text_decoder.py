"""Autoregressive transformer decoder that writes a task's target as text from encoder features.

NeMo-style encoder-decoder head: the decoder cross-attends to the speech encoder's output, so one
module serves SLU (semantics as text) and speech translation alike. Layers are pre-LN, which trains
stably without warm-up tricks at the small sizes we fine-tune on top of a frozen or tuned encoder.

Decoding is incremental: ``init_state`` projects the memory and computes every layer's cross-attention
keys/values once, and ``step`` feeds one token, appending its self-attention keys/values to a
per-layer cache, so each step costs O(U) attention rather than re-running the whole prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """Vaswani et al.'s absolute position table [length, d_model]."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return table


@dataclass
class LayerCache:
    """One layer's keys/values, each [B, H, length, d_head]: self-attention grows a step at a time."""

    self_k: torch.Tensor
    self_v: torch.Tensor
    cross_k: torch.Tensor
    cross_v: torch.Tensor


@dataclass
class DecoderState:
    """Everything ``step`` needs besides the next token; rows are hypotheses, so beams reorder it."""

    layers: list[LayerCache]
    memory_mask: torch.Tensor  # [B, 1, 1, T] bool, True where the encoder frame is real
    position: int  # tokens consumed so far (all rows advance together)

    def index_select(self, index: torch.Tensor) -> DecoderState:
        """Rows ``index`` [N] of every cached tensor: beam expansion and reordering."""
        pick = lambda t: t.index_select(0, index)
        layers = [LayerCache(*(pick(t) for t in (c.self_k, c.self_v, c.cross_k, c.cross_v))) for c in self.layers]
        return DecoderState(layers, pick(self.memory_mask), self.position)


class MultiHeadAttention(nn.Module):
    """Attention with keys/values projected separately, so cross-attention memory is projected once."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.h, self.d_head, self.dropout = n_heads, d_model // n_heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, H, L, d_head]
        return x.view(x.shape[0], x.shape[1], self.h, self.d_head).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, D] -> keys, values [B, H, L, d_head]."""
        return self._heads(self.k(x)), self._heads(self.v(x))

    def attend(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """Queries from x [B, L, D] over k, v [B, H, S, d_head]; mask broadcasts to [B, H, L, S], True = visible."""
        out = F.scaled_dot_product_attention(
            self._heads(self.q(x)),
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal,
        )
        return self.out(out.transpose(1, 2).reshape(x.shape))


class DecoderLayer(nn.Module):
    """Pre-LN block: causal self-attention, cross-attention over memory, feed-forward."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm_cross = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        memory_mask: torch.Tensor,
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, LayerCache]:
        """x [B, U, D]; memory [B, T, D], or None with a ``cache`` (then U = 1 and the cache holds the
        earlier steps and the memory's keys/values); memory_mask [B, 1, 1, T]."""
        h = self.norm_self(x)
        k, v = self.self_attn.keys_values(h)
        if cache is None:  # whole prefix at once: mask the future
            x = x + self.drop(self.self_attn.attend(h, k, v, causal=True))
            cross_k, cross_v = self.cross_attn.keys_values(memory)
        else:  # one new token: it may see every cached position, so no mask
            k, v = torch.cat([cache.self_k, k], dim=2), torch.cat([cache.self_v, v], dim=2)
            x = x + self.drop(self.self_attn.attend(h, k, v))
            cross_k, cross_v = cache.cross_k, cache.cross_v
        x = x + self.drop(self.cross_attn.attend(self.norm_cross(x), cross_k, cross_v, mask=memory_mask))
        x = x + self.drop(self.ff(self.norm_ff(x)))
        return x, LayerCache(k, v, cross_k, cross_v)


class TransformerTextDecoder(nn.Module):
    """Token decoder conditioned on encoder memory; ``forward`` for training, ``init_state``/``step`` for search.

    ``memory_dim`` is the encoder's feature size (a linear layer maps it to ``d_model``; ``None`` means
    it already is ``d_model``). ``positions`` is ``"sinusoidal"`` or ``"learned"``; ``max_len`` bounds
    the token sequence length, bos included. ``tie_embeddings`` shares the embedding with the output
    projection, which helps with the small target vocabularies of SLU.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        n_layers: int = 2,
        n_heads: int = 4,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        max_len: int = 256,
        memory_dim: int | None = None,
        pad_id: int = 0,
        positions: str = "sinusoidal",
        tie_embeddings: bool = True,
    ):
        super().__init__()
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        self.vocab_size, self.d_model, self.max_len, self.pad_id = vocab_size, d_model, max_len, pad_id
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)  # x sqrt(d_model) below gives unit scale
        self.embed_scale = math.sqrt(d_model)
        if positions == "learned":
            self.pos_embed: nn.Embedding | None = nn.Embedding(max_len, d_model)
            nn.init.normal_(self.pos_embed.weight, std=0.02)
        else:
            self.pos_embed = None
            self.register_buffer("pos_table", sinusoidal_positions(max_len, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.memory_proj = nn.Identity() if memory_dim in (None, d_model) else nn.Linear(memory_dim, d_model)
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, ff_dim, dropout) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, vocab_size)
        if tie_embeddings:
            self.output.weight = self.embed.weight

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """tokens [B, U] at positions start..start+U-1 -> [B, U, D]."""
        stop = start + tokens.shape[1]
        if stop > self.max_len:
            raise ValueError(f"token position {stop - 1} is past max_len={self.max_len}")
        if self.pos_embed is not None:
            pos = self.pos_embed.weight[start:stop]
        else:
            pos = self.pos_table[start:stop]
        return self.drop(self.embed(tokens) * self.embed_scale + pos.to(self.embed.weight.dtype))

    def _memory(self, memory: torch.Tensor, memory_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected memory [B, T, D] and its visibility mask [B, 1, 1, T] (lengths must be >= 1)."""
        frames = torch.arange(memory.shape[1], device=memory.device)
        mask = (frames[None, :] < memory_lengths.to(memory.device)[:, None])[:, None, None, :]
        return self.memory_proj(memory), mask

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, memory_lengths: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, U, V] for tokens [B, U] (bos first) given memory [B, T, Dm], lengths [B].

        Trailing pad tokens need no mask: causal attention keeps them out of the real positions.
        """
        memory, mask = self._memory(memory, memory_lengths)
        x = self._embed(tokens, 0)
        for layer in self.layers:
            x, _ = layer(x, memory, mask)
        return self.output(self.final_norm(x))

    def init_state(self, memory: torch.Tensor, memory_lengths: torch.Tensor) -> DecoderState:
        """Empty cache for memory [B, T, Dm], lengths [B]: cross-attention keys/values computed once here."""
        memory, mask = self._memory(memory, memory_lengths)
        empty = memory.new_zeros(memory.shape[0], 0, self.d_model)
        layers = []
        for layer in self.layers:
            self_k, self_v = layer.self_attn.keys_values(empty)
            layers.append(LayerCache(self_k, self_v, *layer.cross_attn.keys_values(memory)))
        return DecoderState(layers, mask, position=0)

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Feed tokens [B] (one per row); logits [B, V] for the next token and the extended state."""
        x = self._embed(tokens[:, None], state.position)
        caches = []
        for layer, cache in zip(self.layers, state.layers, strict=True):
            x, cache = layer(x, None, state.memory_mask, cache)
            caches.append(cache)
        logits = self.output(self.final_norm(x))[:, 0]
        return logits, DecoderState(caches, state.memory_mask, state.position + 1)


class TextDecoderHead(nn.Module):
    """A task head that writes text from encoder features [B, T, D] (SLU semantics, translations): the
    decoder above, cross-attending to the features directly (``memory_dim``)."""

    def __init__(
        self,
        feature_dim: int,
        vocab_size: int,
        pad_id: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        ff_dim: int,
        dropout: float,
        max_len: int,
    ):
        super().__init__()
        self.decoder = TransformerTextDecoder(
            vocab_size,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            max_len=max_len,
            memory_dim=feature_dim,
            pad_id=pad_id,
        )


def teacher_forcing_batch(
    sequences: Sequence[Sequence[int]],
    bos_id: int | Sequence[int],
    eos_id: int,
    pad_id: int,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs ``[bos, y...]`` and targets ``[y..., eos]``, both right-padded to [B, U] with ``pad_id``.

    ``bos_id`` may differ per sequence (a target-language start token)."""
    starts = [bos_id] * len(sequences) if isinstance(bos_id, int) else list(bos_id)
    width = max(len(s) for s in sequences) + 1
    inputs = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    targets = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, seq in enumerate(sequences):
        seq = torch.as_tensor(list(seq), dtype=torch.long)
        inputs[i, 0] = starts[i]
        inputs[i, 1 : len(seq) + 1] = seq
        targets[i, : len(seq)] = seq
        targets[i, len(seq)] = eos_id
    return inputs.to(device), targets.to(device)


def sequence_loss(
    logits: torch.Tensor, targets: torch.Tensor, pad_id: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean (label-smoothed) cross entropy per non-pad target token; logits [B, U, V], targets [B, U].

    Averaged over tokens, not sequences, so long targets weigh by their length. A batch with no
    real token gives 0, not NaN.
    """
    total = F.cross_entropy(
        logits.float().flatten(0, 1),
        targets.flatten(),
        ignore_index=pad_id,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
    return total / (targets != pad_id).sum().clamp_min(1)
