"""Diarize a long recording end to end on the CPU with NEST-L's size: wall time, real-time factor, peak memory.

The path is the one `nestbench run` evaluates with: windows of ``eval_window`` seconds (hop
``eval_hop``) read from disk one batch at a time, NEST-L (random weights, 18 x 512) plus the
Sortformer-style head of experiments/diar_callhome.gin (18 x 192), windows stitched per session,
post-processed and written as RTTM. Memory stays bounded by the window, not the recording.

Target: peak resident memory <= 8 GiB for a 1-hour recording. Baselines printed beside the measure:
real time (RTF 1.0), and the memory one whole-recording pass would need for the attention scores
of a single layer (B x H x T x 2T floats, NeMo's rel-pos scores), which windows avoid.

Usage:
    .venv/bin/python benchmarks/diarization_long.py                  # 60 min
    .venv/bin/python benchmarks/diarization_long.py --minutes 10 --threads 2
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

from nestbench.audio import AudioReader
from nestbench.encoder import ConformerConfig, MelConfig, NestEncoder
from nestbench.metrics.diarization import write_rttm
from nestbench.task import EncoderView, Example
from tasks.diarization import DiarizationTask, session_turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2, help="windows per forward pass")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = NestEncoder(MelConfig(), ConformerConfig(n_layers=18, d_model=512, n_heads=8)).eval()
    task = DiarizationTask()  # the card spec's head: 18 layers x 192, 4 speakers, 90 s windows, hop 45 s
    head = task.build_head(EncoderView(512, 18, encoder.frame_shift)).eval()
    reader = AudioReader(16000)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        n = int(args.minutes * 60 * 16000)
        rng = np.random.default_rng(0)
        with sf.SoundFile(wav, "w", 16000, 1, subtype="PCM_16") as out:  # a minute at a time: the peak below is ours
            for start in range(0, n, 60 * 16000):
                t = np.arange(start, min(n, start + 60 * 16000))
                env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t / 16000)  # syllable-rate envelope
                out.write((0.1 * env * rng.standard_normal(len(t))).astype(np.float32))
        entry = {"id": "long", "audio_filepath": str(wav), "duration": n / 16000}
        windows = task.examples(entry, "eval")
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        start = time.perf_counter()
        outputs = []
        with torch.inference_mode():
            for i in range(0, len(windows), args.batch):
                batch: list[Example] = windows[i : i + args.batch]
                audio = [torch.from_numpy(reader.read(wav, w.offset, w.seconds)) for w in batch]
                lengths = torch.tensor([len(a) for a in audio])
                padded = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
                out = encoder(padded, lengths, layers=[17])
                results = task.infer(head, out.layers[-1], out.lengths)
                outputs += [(w.offset, *r) for w, r in zip(batch, results, strict=True)]
        hyp = session_turns(outputs, entry["duration"], task)
        write_rttm(Path(tmp) / "long.rttm", {"long": hyp})
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    seconds = n / 16000
    frames = int(seconds / encoder.frame_shift)
    whole = 8 * frames * (2 * frames - 1) * 4 / 2**30
    print(
        f"{args.minutes:g} min audio, {len(windows)} windows of {task.eval_window:g} s (hop {task.eval_hop:g} s), "
        f"{args.threads} threads: {wall:.1f} s wall, real-time factor {wall / seconds:.3f} "
        f"(baseline real time 1.0: {seconds / wall:.1f}x faster), {len(hyp)} turns written"
    )
    print(f"peak RSS {peak:.2f} GiB (before diarizing {base_rss:.2f} GiB); target <= 8 GiB")
    print(
        f"baseline: one whole-recording pass would need {whole:.1f} GiB for one layer's attention scores "
        f"(ratio to our whole-process peak: {whole / peak:.1f}x)"
    )


if __name__ == "__main__":
    main()
