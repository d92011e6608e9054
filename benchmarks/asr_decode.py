"""ASR decoding throughput on the CPU with NEST-L's size: greedy CTC, greedy RNN-T and CTC beam search.

The path is the one `nestbench run` evaluates with: NEST-L (random weights, 18 x 512) encodes a batch of
utterances, then the hybrid head of experiments/asr_mcv.gin (NeMo's CTC + RNN-T, prediction and joint
networks of 640, a 1024-token vocabulary) decodes them greedily with either head, and with CTC beam search
(flashlight-text) at two beam sizes. Random weights make the emitted text meaningless but the work the
same: every frame is searched. The encoder is timed once; each decoder is timed on its output.

Printed per decoder: utterances per second and real-time factor, for the decoder alone and for encoder +
decoder, beside the baseline of greedy CTC (the cheapest decoder: an argmax per frame).

Usage:
    .venv/bin/python benchmarks/asr_decode.py                         # 32 utterances of 6 s, 2 threads
    .venv/bin/python benchmarks/asr_decode.py --utterances 64 --seconds 10 --threads 4
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from nestbench.encoder import ConformerConfig, MelConfig, NestEncoder
from nestbench.modules.ctc import CtcBeamDecoder, greedy_ctc
from nestbench.modules.transducer import greedy_transducer
from tasks.asr import BLANK, AsrHead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = NestEncoder(MelConfig(), ConformerConfig(n_layers=18, d_model=512, n_heads=8)).eval()
    head = AsrHead(512, args.vocab, 512, 0, 8, 0.0, 1, True, 640, 640).eval()
    tokens = ["<pad>", "<unk>", "<bos>", "<eos>", *(f"▁w{i}" for i in range(args.vocab - 4))]
    n_samples = int(args.seconds * 16000)
    audio_seconds = args.utterances * args.seconds

    with torch.inference_mode():
        start = time.perf_counter()
        states = []
        for _ in range(0, args.utterances, args.batch):
            audio = 0.1 * torch.randn(args.batch, n_samples)
            out = encoder(audio, torch.full((args.batch,), n_samples), layers=[17])
            states.append(head(out.layers[-1], out.lengths))
        encode = time.perf_counter() - start

        decoders = {
            "greedy CTC": lambda s, n: greedy_ctc(F.log_softmax(head.ctc(s), -1), n, BLANK),
            "greedy RNN-T": lambda s, n: greedy_transducer(head.joint, head.prediction, s, n, BLANK),
        }
        for beam in (4, 16):
            decode = CtcBeamDecoder(tokens, BLANK, beam_size=beam, separator=None)
            decoders[f"CTC beam {beam}"] = lambda s, n, d=decode: d(F.log_softmax(head.ctc(s), -1), n)
        timings = {}
        for name, decode in decoders.items():
            start = time.perf_counter()
            for s, n in states:
                decode(s, n)
            timings[name] = time.perf_counter() - start

    print(
        f"{args.utterances} utterances of {args.seconds:g} s, NEST-L (18 x 512, random weights), "
        f"{args.vocab} tokens, {args.threads} threads; encoder {encode:.1f} s (RTF {encode / audio_seconds:.3f})"
    )
    base = timings["greedy CTC"]
    for name, t in timings.items():
        total = encode + t
        print(
            f"  {name:13s} decode {args.utterances / t:8.1f} utt/s (RTF {t / audio_seconds:.4f}, "
            f"{t / base:6.1f}x greedy CTC); with the encoder {args.utterances / total:6.2f} utt/s "
            f"(RTF {total / audio_seconds:.3f})"
        )


if __name__ == "__main__":
    main()
