"""Greedy and beam-search decoding for any decoder with ``init_state``/``step`` (e.g. TransformerTextDecoder).

Both are batched over utterances and return token ids without bos/eos; ``bos_id`` is one start token
or one per utterance ([B]: a target-language token). Hypotheses are ranked by
their summed log-probability, divided by GNMT's length penalty ((5 + len) / 6) ** alpha when
``length_penalty`` (alpha) > 0, where len counts the generated tokens, eos included. A hypothesis that
reaches ``max_len`` tokens without eos is cut there; it is returned only if none finished.

Beam search follows the usual finished-pool scheme: each step ranks the top 2 x beam_size
continuations, an eos among the top beam_size of them finishes that hypothesis, and the best
beam_size non-eos continuations live on. With beam_size=1 this is exactly greedy decoding. An
utterance stops once no live hypothesis can still beat its best finished one; under a length penalty
(where longer can rank higher) that bound is loose, so it also stops once beam_size hypotheses have
finished, as fairseq does. Beam search is not guaranteed to beat greedy, though it usually does.

Run the decoder in eval mode: dropout in ``step`` would make the search random.
"""

from __future__ import annotations

from typing import Protocol

import torch


class DecoderCache(Protocol):
    def index_select(self, index: torch.Tensor) -> DecoderCache:
        """The cache of rows ``index`` [N]."""
        ...


class IncrementalDecoder(Protocol):
    max_len: int  # positions, bos included

    def init_state(self, memory: torch.Tensor, memory_lengths: torch.Tensor) -> DecoderCache: ...
    def step(self, tokens: torch.Tensor, state: DecoderCache) -> tuple[torch.Tensor, DecoderCache]: ...


def _steps(decoder: IncrementalDecoder, max_len: int | None) -> int:
    """Generated tokens allowed: ``max_len``, by default all the decoder's positions after bos."""
    limit = decoder.max_len - 1
    if max_len is None:
        return limit
    if not 1 <= max_len <= limit:
        raise ValueError(f"max_len must be in [1, {limit}] (the decoder's max_len less bos), got {max_len}")
    return max_len


def _starts(bos_id: int | torch.Tensor, batch: int, k: int, device) -> torch.Tensor:
    """The first input of every hypothesis [B * k]: one start token, or one per utterance (a target language)."""
    if isinstance(bos_id, int):
        return torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
    return torch.as_tensor(bos_id, dtype=torch.long, device=device).repeat_interleave(k)


def _length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def _cut_at_eos(rows: list[list[int]], eos_id: int) -> list[list[int]]:
    return [row[: row.index(eos_id)] if eos_id in row else row for row in rows]


@torch.no_grad()
def greedy_decode(
    decoder: IncrementalDecoder,
    memory: torch.Tensor,
    memory_lengths: torch.Tensor,
    bos_id: int | torch.Tensor,
    eos_id: int,
    max_len: int | None = None,
    return_scores: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """Most likely next token at each step, for memory [B, T, Dm] and lengths [B].

    Returns B id lists (and, with ``return_scores``, each one's summed log-probability, eos included).
    """
    steps = _steps(decoder, max_len)
    batch = memory.shape[0]
    state = decoder.init_state(memory, memory_lengths)
    tokens = _starts(bos_id, batch, 1, memory.device)
    scores = torch.zeros(batch, device=memory.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=memory.device)
    out = []
    for _ in range(steps):
        logits, state = decoder.step(tokens, state)
        logp = logits.float().log_softmax(-1)
        best, tokens = logp.max(-1)
        scores += best.masked_fill(finished, 0.0)
        tokens = tokens.masked_fill(finished, eos_id)
        out.append(tokens)
        finished |= tokens == eos_id
        if finished.all():
            break
    hyps = _cut_at_eos(torch.stack(out, 1).tolist(), eos_id)
    return (hyps, scores.tolist()) if return_scores else hyps


@torch.no_grad()
def beam_search(
    decoder: IncrementalDecoder,
    memory: torch.Tensor,
    memory_lengths: torch.Tensor,
    bos_id: int | torch.Tensor,
    eos_id: int,
    beam_size: int = 4,
    max_len: int | None = None,
    length_penalty: float = 0.0,
    return_scores: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """Best hypothesis per utterance for memory [B, T, Dm] and lengths [B].

    Returns B id lists (and, with ``return_scores``, each one's ranking score: summed log-probability,
    eos included, divided by the length penalty).
    """
    if beam_size < 1 or length_penalty < 0:
        raise ValueError(f"need beam_size >= 1 and length_penalty >= 0, got {beam_size}, {length_penalty}")
    steps = _steps(decoder, max_len)
    batch, k, device = memory.shape[0], beam_size, memory.device
    neg_inf = float("-inf")
    rows = torch.arange(batch, device=device)
    state = decoder.init_state(memory, memory_lengths).index_select(rows.repeat_interleave(k))
    tokens = _starts(bos_id, batch, k, device)
    # Live hypotheses [B, K]: all start as the same bos, so only the first may expand at step 1.
    live = torch.full((batch, k), neg_inf, device=device)
    live[:, 0] = 0.0
    history = torch.zeros(batch, k, 0, dtype=torch.long, device=device)
    # Best finished hypothesis per utterance: rank, tokens before eos, and how many finished.
    best_rank = torch.full((batch,), neg_inf, device=device)
    best_tokens = torch.zeros(batch, steps, dtype=torch.long, device=device)
    best_len = torch.zeros(batch, dtype=torch.long, device=device)
    n_finished = torch.zeros(batch, dtype=torch.long, device=device)
    lp_bound = _length_penalty(steps, length_penalty)  # no hypothesis is penalised more than this

    for t in range(steps):
        logits, state = decoder.step(tokens, state)
        vocab = logits.shape[-1]
        cand = (live[..., None] + logits.float().log_softmax(-1).view(batch, k, vocab)).view(batch, -1)
        cand, index = cand.topk(min(2 * k, k * vocab), dim=1)  # [B, 2K], best first
        origin, token = index // vocab, index % vocab
        is_eos = token == eos_id

        # eos among the top K finishes a hypothesis of t tokens + eos.
        lp = _length_penalty(t + 1, length_penalty)
        fin_rank = torch.where(is_eos[:, :k], cand[:, :k] / lp, neg_inf)
        top_fin_rank, top_fin = fin_rank.max(1)
        better = top_fin_rank > best_rank
        if better.any():
            src = origin[:, :k].gather(1, top_fin[:, None])[:, 0]
            best_tokens[better, :t] = history[rows, src][better]
            best_len[better] = t
            best_rank = torch.where(better, top_fin_rank, best_rank)
        n_finished += (is_eos[:, :k] & (cand[:, :k] > neg_inf)).sum(1)

        # The best K non-eos continuations live on (there are at least K among 2K: one eos per origin).
        keep_score, keep = torch.where(is_eos, neg_inf, cand).topk(k, dim=1)
        origin, token = origin.gather(1, keep), token.gather(1, keep)
        live = keep_score
        history = torch.cat([history[rows[:, None], origin], token[..., None]], dim=2)

        done = best_rank >= live.max(1).values / lp_bound
        if length_penalty > 0:
            done |= n_finished >= k
        if done.all() or t + 1 == steps:
            break
        state = state.index_select((origin + rows[:, None] * k).view(-1))
        tokens = token.view(-1)

    # Utterances where nothing finished fall back to their best cut-off hypothesis.
    cut_rank = (live[:, 0] / _length_penalty(history.shape[2], length_penalty)).tolist()
    finished = zip(n_finished.tolist(), best_tokens.tolist(), best_len.tolist(), best_rank.tolist(), strict=True)
    hyps, scores = [], []
    for (count, tokens_b, length, rank), cut, cut_score in zip(finished, history[:, 0].tolist(), cut_rank, strict=True):
        hyps.append(tokens_b[:length] if count else cut)
        scores.append(rank if count else cut_score)
    return (hyps, scores) if return_scores else hyps
