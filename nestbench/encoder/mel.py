"""NeMo's log-mel front end, reproduced operation for operation.

Every detail here moves the numbers: pre-emphasis applied before masking the padded tail, a
centred zero-padded STFT with a *symmetric* Hann window, power spectrum, Slaney mel bank,
``log(x + 2**-24)``, per-utterance per-feature normalisation with an unbiased std plus 1e-5,
frame count ``len // hop`` (the STFT's extra last frame is masked), padding to a multiple of 16.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MelConfig

_STD_EPS = 1e-5  # NeMo's CONSTANT, added to the std and used as dither default.

_WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


def slaney_mel_filterbank(cfg: MelConfig) -> torch.Tensor:
    """[n_mels, n_fft//2+1] Slaney-scale, Slaney-normalised bank (librosa's default, as NeMo uses)."""
    import torchaudio.functional as AF  # imported lazily: torchaudio is slow to import

    fb = AF.melscale_fbanks(
        n_freqs=cfg.n_fft // 2 + 1,
        f_min=float(cfg.lowfreq),
        f_max=float(cfg.highfreq or cfg.sample_rate / 2),
        n_mels=cfg.features,
        sample_rate=cfg.sample_rate,
        norm="slaney" if cfg.mel_norm == "slaney" else None,
        mel_scale="slaney",
    )
    return fb.T.contiguous()


class MelSpectrogram(nn.Module):
    """Waveform [B, S] -> log-mel [B, n_mels, T] and valid frame counts [B].

    Buffers are named like NeMo's ``preprocessor.featurizer`` (``window``, ``fb``) so a checkpoint's
    own window and filterbank are loaded and used verbatim.
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        win = cfg.win_length
        window_fn = _WINDOWS.get(cfg.window) if cfg.window else None
        window = window_fn(win, periodic=False) if window_fn else torch.ones(win)
        self.register_buffer("window", window)
        self.register_buffer("fb", slaney_mel_filterbank(cfg).unsqueeze(0))
        self.stft_pad_amount = (cfg.n_fft - cfg.hop_length) // 2 if cfg.exact_pad else None

    def frame_count(self, num_samples: torch.Tensor) -> torch.Tensor:
        pad = self.stft_pad_amount * 2 if self.stft_pad_amount is not None else self.cfg.n_fft // 2 * 2
        return torch.div(num_samples + pad - self.cfg.n_fft, self.cfg.hop_length, rounding_mode="floor").long()

    @torch.no_grad()
    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        audio = audio.float()
        frames = self.frame_count(lengths)
        if self.stft_pad_amount is not None:
            audio = nn.functional.pad(audio, (self.stft_pad_amount, self.stft_pad_amount))
        if self.training and cfg.dither > 0:
            audio = audio + cfg.dither * torch.randn_like(audio)
        if cfg.preemph is not None:
            audio = torch.cat((audio[:, :1], audio[:, 1:] - cfg.preemph * audio[:, :-1]), dim=1)
            in_range = torch.arange(audio.shape[1], device=audio.device)[None, :] < lengths[:, None]
            audio = audio.masked_fill(~in_range, 0.0)
        with torch.autocast(audio.device.type, enabled=False):
            spec = torch.stft(
                audio,
                n_fft=cfg.n_fft,
                hop_length=cfg.hop_length,
                win_length=cfg.win_length,
                window=self.window.float(),
                center=not cfg.exact_pad,
                pad_mode="constant",
                return_complex=True,
            )
            spec = torch.view_as_real(spec).pow(2).sum(-1).sqrt()
            if cfg.mag_power != 1.0:
                spec = spec.pow(cfg.mag_power)
            mel = torch.matmul(self.fb.float(), spec)
        if cfg.log:
            guard = _log_guard(cfg.log_zero_guard_value, mel.dtype)
            mel = torch.log(mel + guard) if cfg.log_zero_guard_type == "add" else torch.log(mel.clamp(min=guard))
        if cfg.normalize == "per_feature":
            mel = _normalize_per_feature(mel, frames)
        elif cfg.normalize == "all_features":
            mel = _normalize_all_features(mel, frames)
        valid = torch.arange(mel.shape[-1], device=mel.device)[None, :] < frames[:, None]
        mel = mel.masked_fill(~valid[:, None, :], cfg.pad_value)
        if cfg.pad_to > 0 and mel.shape[-1] % cfg.pad_to:
            mel = nn.functional.pad(mel, (0, cfg.pad_to - mel.shape[-1] % cfg.pad_to), value=cfg.pad_value)
        return mel, frames


def _log_guard(value: float | str, dtype: torch.dtype) -> float:
    if value == "tiny":
        return torch.finfo(dtype).tiny
    if value == "eps":
        return torch.finfo(dtype).eps
    return float(value)


def _normalize_per_feature(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    valid = (torch.arange(x.shape[-1], device=x.device)[None, :] < frames[:, None])[:, None, :]
    count = frames[:, None].to(x.dtype)
    mean = torch.where(valid, x, 0.0).sum(-1) / count
    centred = torch.where(valid, x - mean[..., None], 0.0)
    std = torch.sqrt(centred.pow(2).sum(-1) / (count - 1.0))
    std = std.masked_fill(std.isnan(), 0.0) + _STD_EPS
    return (x - mean[..., None]) / std[..., None]


def _normalize_all_features(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for i, n in enumerate(frames.tolist()):
        seg = x[i, :, :n]
        out[i] = (x[i] - seg.mean()) / (seg.std() + _STD_EPS)
    return out
