"""Restore a NEST ``.nemo`` in real NeMo and compare with nestbench (a dev-time oracle: nestbench never imports NeMo).

Checks that a file written by ``nestbench.pretrain.write_nest_nemo`` (or any NEST ``.nemo``) restores
as NeMo's ``EncDecDenoiseMaskedTokenPredModel`` and that NeMo's preprocessor + encoder (eval, no
masking, no augmentation), quantizer token ids on the clean mel, and decoder log-probs match
nestbench's on fixed audio. Prints the max abs differences as JSON and ``SSL NEMO OK`` / ``FAILED``.

Usage (repository root, the NeMo oracle venv):
    PYTHONPATH=. /work/nemo-venv/bin/python tools/check_ssl_nemo.py --write-tiny /tmp/nest_tiny_ssl.nemo
    PYTHONPATH=. /work/nemo-venv/bin/python tools/check_ssl_nemo.py --nemo /tmp/nest_tiny_ssl.nemo

``--write-tiny PATH`` first writes a tiny nestbench objective (2 layers, d_model 64) whose biases,
BatchNorm statistics and relative-position biases are randomised, so every weight matters.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

SR = 16000


def tiny_objective(seed: int, num_classes: int):
    from nestbench.encoder import ConformerConfig, MelConfig, NestEncoder
    from nestbench.pretrain import NestObjective

    torch.manual_seed(seed)
    conf = ConformerConfig(n_layers=2, d_model=64, n_heads=4, subsampling_conv_channels=32)
    objective = NestObjective(NestEncoder(MelConfig(), conf), num_classes=num_classes)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in [*objective.nest.encoder.state_dict().items(), *objective.decoder.state_dict().items()]:
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith(("bias", "running_mean", "pos_bias_u", "pos_bias_v")):
                t.add_(0.2 * torch.randn(t.shape, generator=gen))
            elif ".norm" in name and name.endswith("weight") and t.dim() == 1:
                t.mul_(1 + 0.2 * torch.randn(t.shape, generator=gen))
    return objective


def fixed_audio() -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances (2.3 s and 1.7 s) of sines with an envelope and a little noise, zero-padded."""
    gen = torch.Generator().manual_seed(7)
    lengths = torch.tensor([36800, 27200])
    t = torch.arange(int(lengths.max())) / SR
    freqs = 120 + 1400 * torch.rand(2, 3, generator=gen)
    wave = torch.sin(2 * math.pi * freqs[:, :, None] * t).sum(1) * (0.6 + 0.4 * torch.sin(2 * math.pi * 2.5 * t))
    wave = 0.1 * wave + 0.003 * torch.randn(wave.shape, generator=gen)
    wave[1, lengths[1] :] = 0
    return wave, lengths


def max_abs_valid(a: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor) -> float:
    """Max |a - b| over valid time steps; a, b are [B, T, ...]."""
    worst = 0.0
    for i, n in enumerate(lengths.tolist()):
        worst = max(worst, (a[i, :n].double() - b[i, :n].double()).abs().max().item())
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nemo", help="the .nemo to check (default: the file --write-tiny writes)")
    parser.add_argument("--write-tiny", metavar="PATH", help="first write a tiny randomised nestbench objective here")
    parser.add_argument("--num-classes", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    if not args.nemo and not args.write_tiny:
        parser.error("give --nemo, --write-tiny, or both")

    from nestbench.encoder import NestEncoder
    from nestbench.pretrain import load_nest_objective, write_nest_nemo

    if args.write_tiny:
        path = write_nest_nemo(args.write_tiny, tiny_objective(args.seed, args.num_classes))
        print(f"wrote {path}")
    path = Path(args.nemo or args.write_tiny)

    from nemo.collections.asr.models import EncDecDenoiseMaskedTokenPredModel

    report: dict = {"nemo": str(path)}
    try:
        model = EncDecDenoiseMaskedTokenPredModel.restore_from(str(path), map_location="cpu")
    except Exception as exc:  # the point of the tool: say exactly what NeMo refused
        print(f"NeMo restore_from FAILED: {type(exc).__name__}: {exc}")
        return 2
    report["restore"] = f"OK ({type(model).__name__})"
    model.eval()
    audio, lengths = fixed_audio()
    with tempfile.TemporaryDirectory() as cache, torch.no_grad():
        ours_encoder = NestEncoder.from_pretrained(path, cache_dir=cache)
        objective = load_nest_objective(path, augment=False, cache_dir=cache)
        mel, mel_len = model.preprocessor(input_signal=audio, length=lengths)
        enc, enc_len = model.encoder(audio_signal=mel, length=mel_len)
        _, tokens = model.quantizer(input_signal=mel)
        log_probs = model.decoder(encoder_output=enc)

        our_mel, our_frames = ours_encoder.preprocessor(audio, lengths)
        out = ours_encoder(audio, lengths)
        our_enc = out.layers[-1]  # [B, T, D]
        obj_enc = objective.nest(audio, lengths).layers[-1]
        our_tokens = objective.quantizer(our_mel)
        tokens_on_nemo_mel = objective.quantizer(mel)
        our_log_probs = objective.decoder(our_enc.transpose(1, 2))

        # and NeMo's own save_to of the restored model reads back here with the same weights
        resaved = Path(cache) / "resaved.nemo"
        model.save_to(str(resaved))
        again = load_nest_objective(resaved, augment=False, cache_dir=cache).state_dict_for_nemo()
        first = objective.state_dict_for_nemo()
        report["nemo_save_to_reads_back_identical"] = again.keys() == first.keys() and all(
            torch.equal(again[k], first[k]) for k in first
        )

    steps = enc_len
    valid_tok = torch.div(mel_len, 8, rounding_mode="floor")
    report.update(
        mel_frames_equal=torch.equal(mel_len.cpu(), our_frames.cpu()),
        enc_lengths_equal=torch.equal(enc_len.cpu(), out.lengths.cpu()),
        mel_max_abs=max_abs_valid(mel.transpose(1, 2), our_mel.transpose(1, 2), mel_len),
        encoder_max_abs=max_abs_valid(enc.transpose(1, 2), our_enc, steps),
        encoder_max_abs_objective_vs_from_pretrained=(obj_enc - our_enc).abs().max().item(),
        encoder_output_scale=enc.abs().max().item(),
        decoder_log_probs_max_abs=max_abs_valid(log_probs, our_log_probs, steps),
        token_shape_nemo=list(tokens.shape),
        token_shape_nestbench=list(our_tokens.shape),
        # over valid steps: a padded step's mel is constant, its projection near zero and its nearest
        # code a tie decided by rounding; targets never come from padding
        tokens_equal_on_nemo_mel=all(
            torch.equal(tokens[i, :n].cpu(), tokens_on_nemo_mel[i, :n].cpu()) for i, n in enumerate(valid_tok.tolist())
        ),
        tokens_padding_steps_differing=int((tokens.cpu() != tokens_on_nemo_mel.cpu()).any(-1).sum())
        - sum(
            int((tokens[i, :n].cpu() != tokens_on_nemo_mel[i, :n].cpu()).any(-1).sum())
            for i, n in enumerate(valid_tok.tolist())
        ),
        tokens_agree_on_own_mels=sum(
            (tokens[i, :n] == our_tokens[i, :n]).all(-1).sum().item() for i, n in enumerate(valid_tok.tolist())
        ),
        tokens_valid_steps=int(valid_tok.sum()),
    )
    print(json.dumps(report, indent=2))
    ok = (
        report["mel_frames_equal"]
        and report["nemo_save_to_reads_back_identical"]
        and report["enc_lengths_equal"]
        and report["tokens_equal_on_nemo_mel"]
        and max(report["mel_max_abs"], report["encoder_max_abs"], report["decoder_log_probs_max_abs"]) <= args.tolerance
    )
    print("SSL NEMO OK" if ok else "SSL NEMO FAILED", f"(tolerance {args.tolerance:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
