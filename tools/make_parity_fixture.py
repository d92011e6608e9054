"""Build a NeMo NEST reference fixture: a randomised ``.nemo``, synthetic speech, and NeMo's own outputs.

Why: nestbench re-implements NeMo's mel front end and FastConformer encoder without importing NeMo;
this script is the oracle. It runs NeMo's real ``EncDecDenoiseMaskedTokenPredModel`` (the NEST class)
with weights randomised so that every bias, BatchNorm statistic and relative-position bias matters,
and records the preprocessor's mel features and every conformer layer's output, per utterance and
for one padded batch.

Usage:
    /work/nemo-venv/bin/python tools/make_parity_fixture.py --size tiny --out tests/fixtures/parity/tiny
    /work/nemo-venv/bin/python tools/make_parity_fixture.py --size large --out /tmp/parity_large
    /work/nemo-venv/bin/python tools/make_parity_fixture.py --size xlarge --out /tmp/parity_xlarge

Run from the repository root with the NeMo oracle venv (the script puts the repo on ``sys.path`` for
``nestbench.synth``); ``large``/``xlarge`` are too big to commit. Outputs in ``--out``:
``nest_<size>.nemo``, ``audio/<utt>.wav`` (16 kHz PCM16), ``manifest.jsonl`` (NeMo manifest, paths
relative to its folder), ``reference.npz`` and ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
HOP = 160
DEFAULT_SEED = 20240826

# Rows of the NEST config table (examples/asr/conf/ssl/nest/nest_fast-conformer.yaml); `large` has the
# released NEST-L depth (18 layers), `tiny` is a parity-only model small enough to commit.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=96, n_heads=4, n_layers=3, subsampling_conv_channels=32, ff_expansion_factor=4,
                 conv_kernel_size=9, xscaling=True, untie_biases=True, use_bias=True, num_classes=32),
    "large": dict(d_model=512, n_heads=8, n_layers=18, subsampling_conv_channels=256, ff_expansion_factor=4,
                  conv_kernel_size=9, xscaling=True, untie_biases=True, use_bias=True, num_classes=8192),
    "xlarge": dict(d_model=1024, n_heads=8, n_layers=24, subsampling_conv_channels=256, ff_expansion_factor=4,
                   conv_kernel_size=9, xscaling=False, untie_biases=True, use_bias=False, num_classes=8192),
}  # fmt: skip


@dataclass(frozen=True)
class Utterance:
    """One synthetic recording; ``n_samples`` fixes the length exactly (the speech is padded to it)."""

    utt_id: str
    text: str
    voice: str
    rate: int
    pitch: int
    n_samples: int


# 1.3 s and 4.1 s are whole 160-sample hops, 2.7 s is not; mel frames 131/271/411 are not multiples of
# the preprocessor's pad_to=16, so padding and length masks are exercised everywhere.
UTTERANCES = (
    Utterance("utt_short", "Open the door, please.", "en+m3", 190, 50, 20_800),
    Utterance("utt_mid", "Seven bright kites drifted over the quiet harbour.", "en+f2", 185, 60, 43_237),
    Utterance("utt_long", "Please remember to water the tomato plants before the afternoon sun.",
              "en+m1", 165, 40, 65_600),
)  # fmt: skip


def nest_config(size: str) -> dict[str, Any]:
    """The NEST FastConformer model config with data sections removed so no data is ever touched."""
    s = SIZES[size]
    return {
        "sample_rate": SAMPLE_RATE,
        "num_classes": s["num_classes"],
        "num_books": 1,
        "code_dim": 16,
        "squeeze_single": False,
        "mask_position": "pre_conv",
        "train_ds": None,
        "validation_ds": None,
        "test_ds": None,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": SAMPLE_RATE, "normalize": "per_feature", "window_size": 0.025,
            "window_stride": 0.01, "window": "hann", "features": 80, "n_fft": 512, "log": True,
            "frame_splicing": 1, "dither": 0.00001, "pad_to": 16, "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 0, "time_masks": 0, "freq_width": 27, "time_width": 0.05,
        },
        "masking": {
            "_target_": "nemo.collections.asr.modules.RandomBlockMasking",
            "block_size": 40, "mask_prob": 0.01, "feat_in": 80, "freeze": True, "allow_overlap": True,
        },
        "quantizer": {
            "_target_": "nemo.collections.asr.modules.RandomProjectionVectorQuantizer",
            "feat_in": 80, "code_dim": 16, "num_books": 1, "num_classes": s["num_classes"],
            "dist_fn": "l2", "freeze": True, "squeeze_single": False, "combine_time_steps": 8,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80, "feat_out": -1, "n_layers": s["n_layers"], "d_model": s["d_model"],
            "use_bias": s["use_bias"], "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": s["subsampling_conv_channels"], "causal_downsampling": False,
            "ff_expansion_factor": s["ff_expansion_factor"], "self_attention_model": "rel_pos",
            "n_heads": s["n_heads"], "att_context_size": [-1, -1], "att_context_style": "regular",
            "xscaling": s["xscaling"], "untie_biases": s["untie_biases"], "pos_emb_max_len": 5000,
            "conv_kernel_size": s["conv_kernel_size"], "conv_norm_type": "batch_norm",
            "conv_context_size": None, "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0,
            "dropout_att": 0.1, "stochastic_depth_drop_prob": 0.0, "stochastic_depth_mode": "linear",
            "stochastic_depth_start_layer": 1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.MultiSoftmaxDecoder",
            "feat_in": s["d_model"], "num_classes": s["num_classes"], "num_decoders": 1,
            "squeeze_single": False, "use_bias": True,
        },
        "loss": {
            "_target_": "nemo.collections.asr.losses.MultiMLMLoss",
            "combine_time_steps": 8, "mask_threshold": 0.8, "num_decoders": 1, "squeeze_single": False,
        },
        "optim": {
            "name": "adamw", "lr": 5.0, "betas": [0.9, 0.98], "weight_decay": 1e-3,
            "sched": {"name": "NoamAnnealing", "d_model": s["d_model"], "warmup_steps": 25000,
                      "warmup_ratio": None, "min_lr": 1e-6},
        },
    }  # fmt: skip


def build_model(size: str, seed: int) -> torch.nn.Module:
    """NeMo's own NEST class from the config; seeded so construction is reproducible."""
    from nemo.collections.asr.models import EncDecDenoiseMaskedTokenPredModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    return EncDecDenoiseMaskedTokenPredModel(cfg=OmegaConf.create(nest_config(size)), trainer=None)


_WITH_BIAS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int) -> dict[str, int]:
    """Make parameters that NeMo initialises to constants random, so a port that drops them fails.

    Biases and ``pos_bias_u/v`` start at zero, norms at identity, BatchNorm statistics at (0, 1): a
    re-implementation could skip any of them and still match. Weights keep NeMo's (seeded) scaled
    init so activations stay in a realistic range through 24 layers.
    """
    gen = torch.Generator().manual_seed(seed + 1)

    def rand(shape: torch.Size, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    counts = {"bias": 0, "pos_bias": 0, "batch_norm": 0, "layer_norm": 0}
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.weight.copy_(rand(module.weight.shape, 0.5, 1.5))
            module.bias.copy_(rand(module.bias.shape, -0.3, 0.3))
            module.running_mean.copy_(rand(module.running_mean.shape, -0.5, 0.5))
            module.running_var.copy_(rand(module.running_var.shape, 0.5, 2.0))
            counts["batch_norm"] += 1
        elif isinstance(module, torch.nn.LayerNorm):
            module.weight.copy_(rand(module.weight.shape, 0.8, 1.2))
            module.bias.copy_(rand(module.bias.shape, -0.1, 0.1))
            counts["layer_norm"] += 1
        elif isinstance(module, _WITH_BIAS) and module.bias is not None:
            fan_in = module.weight[0].numel()
            bound = fan_in**-0.5
            module.bias.copy_(rand(module.bias.shape, -bound, bound))
            counts["bias"] += 1
        for name in ("pos_bias_u", "pos_bias_v"):
            param = getattr(module, name, None)
            if isinstance(param, torch.nn.Parameter):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
                counts["pos_bias"] += 1
    model.eval()
    return counts


def make_audio(out: Path, seed: int) -> list[tuple[Utterance, Path]]:
    """Synthesise, pad with silence to the exact length, add a little noise and write PCM16 WAVs."""
    from nestbench.synth import Voice, synthesize

    rng = np.random.default_rng(seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    written = []
    for utt in UTTERANCES:
        speech, _ = synthesize(utt.text, Voice(utt.voice, utt.rate, utt.pitch), sample_rate=SAMPLE_RATE)
        if len(speech) > utt.n_samples:  # keep the manifest text truthful: the whole sentence should fit
            print(f"warning: {utt.utt_id} speech is {len(speech)} samples, trimmed to {utt.n_samples}")
            speech = speech[: utt.n_samples]
        speech = np.pad(speech, (0, utt.n_samples - len(speech)))
        speech = 0.5 * speech / max(float(np.abs(speech).max()), 1e-6)
        audio = np.clip(speech + rng.normal(0.0, 0.003, size=speech.shape), -1.0, 1.0)
        path = out / "audio" / f"{utt.utt_id}.wav"
        sf.write(path, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        written.append((utt, path))
    return written


def load_wav(path: Path) -> np.ndarray:
    """Read back what was written, so both sides see the same int16-quantised samples."""
    audio, sr = sf.read(path, dtype="float32")
    assert sr == SAMPLE_RATE and audio.ndim == 1, (path, sr, audio.shape)
    return audio


@torch.no_grad()
def run_nemo(model: torch.nn.Module, audios: list[np.ndarray]) -> dict[str, np.ndarray]:
    """NeMo preprocessor + encoder on one padded batch; layer outputs captured by forward hooks."""
    lengths = torch.tensor([len(a) for a in audios], dtype=torch.int64)
    signal = torch.zeros(len(audios), int(lengths.max()), dtype=torch.float32)
    for i, a in enumerate(audios):
        signal[i, : len(a)] = torch.from_numpy(a)

    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        captured.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    handles = [layer.register_forward_hook(hook) for layer in model.encoder.layers]
    try:
        mel, mel_len = model.preprocessor(input_signal=signal, length=lengths)
        enc, enc_len = model.encoder(audio_signal=mel, length=mel_len)
    finally:
        for h in handles:
            h.remove()
    layers = torch.stack(captured)  # [L, B, T, D]
    assert torch.equal(layers[-1].transpose(1, 2), enc), "final layer output should be the encoder output"
    return {
        "audio_len": lengths.numpy(),
        "mel": mel.numpy().astype(np.float32),
        "mel_len": mel_len.numpy().astype(np.int64),
        "layers": layers.numpy().astype(np.float32),
        "enc": enc.numpy().astype(np.float32),
        "enc_len": enc_len.numpy().astype(np.int64),
    }


def reference_arrays(model: torch.nn.Module, utt_ids: list[str], audios: list[np.ndarray]) -> dict[str, Any]:
    """The npz layout: ``single/<utt>/...`` from batch-of-one runs, ``batch/...`` from one padded batch."""
    arrays: dict[str, Any] = {"utt_ids": np.array(utt_ids)}
    for utt_id, audio in zip(utt_ids, audios, strict=True):
        r = run_nemo(model, [audio])
        arrays[f"single/{utt_id}/mel"] = r["mel"][0]
        arrays[f"single/{utt_id}/mel_len"] = np.int64(r["mel_len"][0])
        arrays[f"single/{utt_id}/layers"] = r["layers"][:, 0]
        arrays[f"single/{utt_id}/enc"] = r["enc"][0]
        arrays[f"single/{utt_id}/enc_len"] = np.int64(r["enc_len"][0])
    batch = run_nemo(model, audios)
    for key, value in batch.items():
        arrays[f"batch/{key}"] = value
    return arrays


def write_manifest(out: Path, written: list[tuple[Utterance, Path]], audios: list[np.ndarray]) -> None:
    with open(out / "manifest.jsonl", "w") as fh:
        for (utt, path), audio in zip(written, audios, strict=True):
            entry = {
                "audio_filepath": str(path.relative_to(out)),
                "duration": round(len(audio) / SAMPLE_RATE, 6),
                "text": utt.text,
                "id": utt.utt_id,
            }
            fh.write(json.dumps(entry) + "\n")


def write_readme(out: Path, size: str, seed: int, nemo_name: str, arrays: dict[str, Any]) -> None:
    import nemo

    try:
        rel_out = out.relative_to(REPO_ROOT)
    except ValueError:
        rel_out = out
    keys = "\n".join(f"- `{k}`: {np.asarray(v).dtype} {list(np.asarray(v).shape)}" for k, v in arrays.items())
    cfg = ", ".join(f"{k}={v}" for k, v in SIZES[size].items())
    text = f"""# NeMo NEST parity fixture: `{size}`

Generated by `tools/make_parity_fixture.py`; do not edit by hand.

    /work/nemo-venv/bin/python tools/make_parity_fixture.py --size {size} --out {rel_out} --seed {seed}

- NeMo {nemo.__version__}, torch {torch.__version__}, numpy {np.__version__}, soundfile {sf.__version__},
  Python {platform.python_version()}
- model: `EncDecDenoiseMaskedTokenPredModel` (NEST FastConformer config), {cfg}
- seed {seed}: model construction (`torch.manual_seed`), parameter randomisation (seed+1), audio noise
- weights: NeMo's seeded init, then every Linear/Conv bias, `pos_bias_u/v`, BatchNorm
  weight/bias/running stats and LayerNorm weight/bias replaced by random values; saved with
  `model.save_to("{nemo_name}")`; inference in `eval()`, float32, CPU, no grad (so no dither)
- audio: espeak-ng via `nestbench.synth`, resampled to 16 kHz, padded with silence to a fixed length,
  peak 0.5 plus N(0, 0.003) noise, written as PCM16; the reference was computed from the WAVs read back

`reference.npz` (`np.load(..., allow_pickle=False)`): `single/<utt>/...` are batch-of-one runs,
`batch/...` one zero-padded batch in `utt_ids` order. `mel` is the preprocessor output
(padded to a multiple of 16 frames), `layers` every conformer layer's output `[L, (B,) T, D]` from
forward hooks, `enc` the encoder output `[(B,) D, T]` (equal to the last layer, transposed).
Frames past `mel_len` / `enc_len` are padding: compare only valid frames.

{keys}
"""
    (out / "README.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    model = build_model(args.size, args.seed)
    counts = randomise(model, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    nemo_name = f"nest_{args.size}.nemo"
    model.save_to(str(out / nemo_name))
    t_model = time.perf_counter()

    written = make_audio(out, args.seed)
    audios = [load_wav(path) for _, path in written]
    utt_ids = [utt.utt_id for utt, _ in written]
    write_manifest(out, written, audios)
    t_audio = time.perf_counter()

    arrays = reference_arrays(model, utt_ids, audios)
    np.savez_compressed(out / "reference.npz", **arrays)
    write_readme(out, args.size, args.seed, nemo_name, arrays)
    t_ref = time.perf_counter()

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"size={args.size} params={n_params:,} randomised={counts}")
    for utt_id, audio in zip(utt_ids, audios, strict=True):
        print(
            f"  {utt_id}: {len(audio)} samples ({len(audio) / SAMPLE_RATE:.3f} s) "
            f"mel {list(arrays[f'single/{utt_id}/mel'].shape)} len {arrays[f'single/{utt_id}/mel_len']} "
            f"layers {list(arrays[f'single/{utt_id}/layers'].shape)} len {arrays[f'single/{utt_id}/enc_len']}"
        )
    print(f"  batch: mel {list(arrays['batch/mel'].shape)} layers {list(arrays['batch/layers'].shape)}")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(out)}: {p.stat().st_size / 1e6:.3f} MB")
    print(f"  total {total / 1e6:.2f} MB in {out}")
    print(
        f"time: model+save {t_model - t0:.1f} s, audio {t_audio - t_model:.1f} s, "
        f"reference {t_ref - t_audio:.1f} s, total {t_ref - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
