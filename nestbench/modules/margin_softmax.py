"""Additive angular margin softmax (ArcFace), the speaker-classification loss shared by the speaker
verification head and the diarization head's auxiliary speaker loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def aam_softmax_loss(
    embeddings: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, margin: float, scale: float
) -> torch.Tensor:
    """cos(theta + m) for the true class, scaled cosine logits, cross-entropy: embeddings [N, E],
    class weights [C, E], labels [N]."""
    cos = F.linear(F.normalize(embeddings), F.normalize(weights)).clamp(-1 + 1e-7, 1 - 1e-7)
    target = torch.cos(torch.acos(cos.gather(1, labels[:, None])) + margin)
    logits = cos.scatter(1, labels[:, None], target) * scale
    return F.cross_entropy(logits, labels)
