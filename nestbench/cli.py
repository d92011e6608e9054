"""``nestbench`` command line: each subcommand parses, calls the Python API, prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _extract(args: argparse.Namespace) -> int:
    from .encoder import NestEncoder
    from .extract import extract_features, find_inputs

    inputs = find_inputs(args.input)  # validate inputs before loading a large model
    encoder = NestEncoder.from_pretrained(args.model, cache_dir=args.cache_dir)
    report = extract_features(
        encoder,
        inputs,
        args.output,
        layers=args.layers,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        skip_bad=args.skip_bad,
        progress=not args.quiet,
    )
    summary = {
        "output": str(report.output_dir),
        "written": len(report.written),
        "already_done": report.already_done,
        "bad": len(report.bad),
        "audio_seconds": round(report.audio_seconds, 2),
        "wall_seconds": round(report.wall_seconds, 2),
        "padding_fraction": round(report.padding_fraction, 4),
    }
    print(json.dumps(summary))
    for path, err in report.bad:
        print(f"skipped {path}: {err}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nestbench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("extract", help="write per-layer NEST features to .npy files")
    ex.add_argument("--model", required=True, help=".nemo file, unpacked .nemo folder, or hub id (nvidia/...)")
    ex.add_argument("--input", required=True, help="NeMo JSONL manifest, an audio file, or a folder of audio")
    ex.add_argument("--output", required=True, help="folder for <utt_id>.npy + index.jsonl")
    ex.add_argument("--layers", default="all", help="all | last | comma-separated 0-based ids (default: all)")
    ex.add_argument("--batch-size", type=int, default=8)
    ex.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ex.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ex.add_argument("--skip-bad", action="store_true", help="list unusable files in bad_inputs.jsonl and go on")
    ex.add_argument(
        "--cache-dir", default=None, help="checkpoint cache (default $NESTBENCH_CACHE or ~/.cache/nestbench)"
    )
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    ex.set_defaults(func=_extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from .checkpoint import CheckpointError

    try:
        return args.func(args)
    except (ValueError, OSError, CheckpointError) as err:
        print(f"nestbench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
