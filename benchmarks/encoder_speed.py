"""Encoder throughput: nestbench vs NeMo's ConformerEncoder on the same random NEST-L weights.

Baseline: NeMo's ``ConformerEncoder`` (``nemo_toolkit[asr]`` 3.0.0, its default attention path),
when NeMo is importable; otherwise nestbench alone is timed. Both run eval, no grad, on the same
log-mel features of a batch of 4 x 10 s; outputs are checked to agree before timing.

Usage:
    # in the NeMo venv (dev-time oracle), with the repo on the path:
    PYTHONPATH=. /work/nemo-venv/bin/python benchmarks/encoder_speed.py
    # nestbench only, or on a GPU in bf16 (prints hours of audio per second of compute):
    .venv/bin/python benchmarks/encoder_speed.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from nestbench.encoder import ConformerConfig, MelConfig, NestEncoder

NEST_L = ConformerConfig(n_layers=18, d_model=512, n_heads=8, subsampling_conv_channels=256)


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial biases and batch-norm statistics, so no code path is a no-op."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(("bias", "running_mean", "pos_bias_u", "pos_bias_v")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)


def _time(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def _nemo_encoder(cfg: ConformerConfig):
    try:
        from nemo.collections.asr.modules import ConformerEncoder
    except ImportError:
        return None
    return ConformerEncoder(
        feat_in=cfg.feat_in,
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        subsampling="dw_striding",
        subsampling_factor=8,
        subsampling_conv_channels=cfg.conv_channels,
        ff_expansion_factor=4,
        self_attention_model="rel_pos",
        xscaling=cfg.xscaling,
        untie_biases=True,
        conv_kernel_size=9,
        conv_norm_type="batch_norm",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    ours = NestEncoder(MelConfig(), NEST_L).eval()
    _randomise(ours)
    ours.to(device)
    samples = int(args.seconds * ours.sample_rate)
    audio = torch.randn(args.batch, samples, device=device) * 0.1
    lengths = torch.full((args.batch,), samples, device=device)
    lengths[1:] -= torch.arange(1, args.batch, device=device) * 1600  # a little padding, as in real batches
    with torch.inference_mode():
        feats, frames = ours.preprocessor(audio, lengths)
    amp = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if args.dtype == "bfloat16"
        else (contextlib.nullcontext)
    )

    def run_ours():
        with torch.inference_mode(), amp():
            return ours.encoder(feats, frames)

    results = {"nestbench": _time(run_ours, args.repeats, args.warmup)}
    nemo = _nemo_encoder(NEST_L)
    if nemo is not None:
        nemo.load_state_dict(ours.encoder.state_dict(), strict=False)
        nemo.eval().to(device)

        def run_nemo():
            with torch.inference_mode(), amp():
                return nemo(audio_signal=feats, length=frames)

        with torch.inference_mode():
            (layers, out_len), (ref, ref_len) = run_ours(), run_nemo()
            valid = torch.arange(ref.shape[-1], device=device)[None, :] < ref_len[:, None]
            diff = (layers[-1].transpose(1, 2) - ref).abs().amax(1)[valid].max().item()
        print(
            f"outputs agree: max |diff| on valid frames = {diff:.2e}; lengths equal: {bool((out_len == ref_len).all())}"
        )
        results["nemo"] = _time(run_nemo, args.repeats, args.warmup)

    audio_hours = float(lengths.sum()) / ours.sample_rate / 3600
    print(
        f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} batch={args.batch}x{args.seconds:g}s "
        f"(NEST-L 512x18, random weights)"
    )
    for name, times in results.items():
        med = statistics.median(times)
        print(f"  {name:10s} median {med:.3f} s  ({audio_hours / med:.4f} h audio / s)")
    if "nemo" in results:
        ratio = statistics.median(results["nemo"]) / statistics.median(results["nestbench"])
        print(f"throughput ratio nestbench / NeMo = {ratio:.2f}x")


if __name__ == "__main__":
    main()
