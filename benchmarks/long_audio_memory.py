"""Peak memory and time to extract all layers of a long recording with NEST-L on the CPU.

Target: a 10-minute file within 8 GiB peak resident memory. Baseline for comparison: the
memory the attention scores alone would need without row blocking (B x H x T x 2T floats
for NeMo's rel-pos scores, per layer), printed beside the measured peak.

Usage:
    .venv/bin/python benchmarks/long_audio_memory.py                 # 10 min, NEST-L, all layers
    .venv/bin/python benchmarks/long_audio_memory.py --minutes 2 --layers last
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from nestbench.encoder import ConformerConfig, MelConfig, NestEncoder
from nestbench.extract import extract_features, find_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--layers", default="all")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = NestEncoder(MelConfig(), ConformerConfig(n_layers=18, d_model=512, n_heads=8)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        rng = np.random.default_rng(0)
        n = int(args.minutes * 60 * 16000)
        # speech-like: noise shaped by a slow syllable-rate envelope
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * np.arange(n) / 16000)
        sf.write(wav, (0.1 * env * rng.standard_normal(n)).astype(np.float32), 16000, subtype="PCM_16")
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        start = time.perf_counter()
        report = extract_features(encoder, find_inputs(wav), Path(tmp) / "out", layers=args.layers, progress=False)
        wall = time.perf_counter() - start
        feats = np.load(Path(tmp) / "out" / "long.npy", mmap_mode="r")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    frames = feats.shape[1]
    unblocked = 8 * frames * (2 * frames - 1) * 4 / 2**30
    print(
        f"{args.minutes:g} min audio -> features {tuple(feats.shape)} in {wall:.1f} s "
        f"({report.audio_seconds / wall:.1f}x real time)"
    )
    print(f"peak RSS {peak:.2f} GiB (before extraction {base_rss:.2f} GiB); target <= 8 GiB")
    print(
        f"baseline: unblocked rel-pos scores alone would need {unblocked:.2f} GiB per layer "
        f"(ratio to our whole-process peak: {unblocked / peak:.2f}x)"
    )


if __name__ == "__main__":
    main()
