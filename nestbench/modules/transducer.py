"""RNN-Transducer pieces for the hybrid CTC + RNN-T head NeMo's NEST fine-tuning uses: a prediction
network (embedding + LSTM over the previous tokens), a joint network, the loss
(``torchaudio.functional.rnnt_loss``) and greedy decoding.

The blank is the tokenizers' pad id (0), which no target contains; the prediction network starts from
the blank as its "start of sequence", as NeMo's RNNTDecoder does.
"""

from __future__ import annotations

import torch
from torch import nn


class PredictionNetwork(nn.Module):
    """Previous tokens -> states [B, U, dim]; step() advances one token with an LSTM state."""

    def __init__(self, vocab_size: int, dim: int, n_layers: int = 1, blank: int = 0, dropout: float = 0.0):
        super().__init__()
        self.blank = blank
        self.embed = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(dim, dim, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0)

    def forward(self, targets: torch.Tensor) -> torch.Tensor:
        """``targets`` [B, U] -> [B, U + 1, dim]: the state before each target and after the last."""
        start = torch.full_like(targets[:, :1], self.blank)
        out, _ = self.lstm(self.embed(torch.cat([start, targets], 1)))
        return out

    def step(self, token: torch.Tensor, state=None):
        """One token [B] -> ([B, dim], new state)."""
        out, state = self.lstm(self.embed(token)[:, None], state)
        return out[:, 0], state


class JointNetwork(nn.Module):
    """Encoder frame + prediction state -> logits over the vocabulary (blank included)."""

    def __init__(self, encoder_dim: int, pred_dim: int, joint_dim: int, vocab_size: int):
        super().__init__()
        self.enc = nn.Linear(encoder_dim, joint_dim)
        self.pred = nn.Linear(pred_dim, joint_dim)
        self.out = nn.Linear(joint_dim, vocab_size)

    def forward(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """``enc`` [B, T, E], ``pred`` [B, U1, P] -> [B, T, U1, V]."""
        return self.out(torch.tanh(self.enc(enc)[:, :, None] + self.pred(pred)[:, None]))


def transducer_loss(
    joint: JointNetwork,
    prediction: PredictionNetwork,
    enc: torch.Tensor,
    enc_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
) -> torch.Tensor:
    """Mean per-utterance RNN-T negative log-likelihood, divided by target length (NeMo's ``mean_batch``
    with per-token normalisation keeps it on the scale of the CTC loss it is mixed with)."""
    import torchaudio.functional as AF

    # torchaudio wants the padded sizes to be exactly the longest lengths
    enc, targets = enc[:, : int(enc_lengths.max())], targets[:, : int(target_lengths.max())]
    logits = joint(enc, prediction(targets)).float()
    nll = AF.rnnt_loss(
        logits,
        targets.int(),
        enc_lengths.int(),
        target_lengths.int(),
        blank=blank,
        reduction="none",
        clamp=-1,
    )
    return (nll / target_lengths.clamp(min=1).float()).mean()


@torch.no_grad()
def greedy_transducer(
    joint: JointNetwork,
    prediction: PredictionNetwork,
    enc: torch.Tensor,
    enc_lengths: torch.Tensor,
    blank: int,
    max_symbols_per_frame: int = 5,
) -> list[list[int]]:
    """Greedy RNN-T decoding, frame-synchronous over the batch: at each frame emit the best non-blank
    token and stay, until blank (or ``max_symbols_per_frame``) moves every row to the next frame."""
    b = enc.shape[0]
    enc_proj = joint.enc(enc)
    token = torch.full((b,), blank, dtype=torch.long, device=enc.device)
    pred, state = prediction.step(token)
    pred_proj = joint.pred(pred)
    out: list[list[int]] = [[] for _ in range(b)]
    for t in range(enc.shape[1]):
        live = t < enc_lengths
        for _ in range(max_symbols_per_frame):
            logits = joint.out(torch.tanh(enc_proj[:, t] + pred_proj))
            best = logits.argmax(-1)
            emit = live & (best != blank)
            if not emit.any():
                break
            for i in emit.nonzero()[:, 0].tolist():
                out[i].append(int(best[i]))
            new_pred, new_state = prediction.step(best.masked_fill(~emit, blank), state)
            keep = emit[:, None]
            pred_proj = torch.where(keep, joint.pred(new_pred), pred_proj)
            state = tuple(torch.where(keep[None], n, o) for n, o in zip(new_state, state, strict=True))
    return out
