"""``nestbench`` command line: each subcommand parses, calls the Python API, prints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path


def _extract(args: argparse.Namespace) -> int:
    from .encoder import NestEncoder
    from .extract import check_device, extract_features, find_inputs

    check_device(args.device)  # both before loading a large model
    inputs = find_inputs(args.input)
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


def _run(args: argparse.Namespace) -> int:
    from .runner import run_experiment
    from .spec import load_spec

    spec = load_spec(args.spec, args.gin)  # a typo fails here, before any work
    resume = True if args.resume == "latest" else args.resume
    callbacks, extra, pruned = [], {}, ()
    trial = os.environ.get("NESTBENCH_TRIAL")  # set by `nestbench sweep` for the trial it launches
    if trial:
        from .sweep.trial import PRUNED_EXIT_CODE, TrialPruned, trial_hooks

        callbacks, extra = trial_hooks(json.loads(trial))
        pruned = (TrialPruned,)
    try:
        result = run_experiment(
            spec,
            runs_dir=args.runs_dir,
            resume=resume,
            wandb=args.wandb,
            progress=not args.quiet,
            callbacks=callbacks,
            record_extra=extra,
        )
    except pruned as err:  # the sweep's pruner stopped this trial (nothing is caught outside a sweep)
        print(f"pruned by the sweep: {err}")
        return PRUNED_EXIT_CODE
    if result.record:  # other DDP ranks only train: rank 0 reports
        print(format_metrics(spec.experiment.name, result.metrics))
        print(f"run folder: {result.run_dir}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from .pretrain.run import run_pretraining
    from .spec import load_spec

    spec = load_spec(args.spec, args.gin, root="PretrainExperiment")
    resume = True if args.resume == "latest" else args.resume
    result = run_pretraining(spec, runs_dir=args.runs_dir, resume=resume, wandb=args.wandb, progress=not args.quiet)
    if result.record:  # other DDP ranks only train: rank 0 reports
        print(format_metrics(f"{spec.experiment.name} (pretraining)", _printable(result.metrics)))
        print(f"model: {result.run_dir / 'nest.nemo'}")
        print(f"run folder: {result.run_dir}")
    return 0


def _printable(metrics: dict) -> dict:
    return {split: {k: v for k, v in m.items() if isinstance(v, (int, float, bool))} for split, m in metrics.items()}


def _prepare(args: argparse.Namespace) -> int:
    from .runner import prepare_experiment
    from .spec import load_spec

    spec = load_spec(args.spec, args.gin)
    print(json.dumps(prepare_experiment(spec, runs_dir=args.runs_dir, progress=not args.quiet)))
    return 0


def _verb(args: argparse.Namespace) -> int:
    """A registered per-task or per-corpus verb (``nestbench score <task>``, ``nestbench download <corpus>``)."""
    result = args.verb.run(args)
    if result is not None:
        print(result if isinstance(result, str) else json.dumps(result, indent=2, sort_keys=True))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate_run import evaluate_run

    result = evaluate_run(args.run_dir, args.gin, runs_dir=args.runs_dir, progress=not args.quiet)
    print(format_metrics(f"evaluation of {result.record['evaluation_of']}", result.metrics))
    print(f"evaluation folder: {result.run_dir}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import build_leaderboards, default_results

    results = args.results or default_results(args.runs_dir)
    written = build_leaderboards(results, args.out, strict=not args.skip_refused)
    print("results: " + (", ".join(map(str, results)) or "none (card rows only)"))
    for path in written:
        print(f"wrote {path}")
    return 0


def format_metrics(name: str, metrics: dict[str, dict[str, float]]) -> str:
    """A small fixed-width table: one row per metric, one column per split."""
    splits = list(metrics)
    keys = list(dict.fromkeys(k for m in metrics.values() for k in m))
    width = max(len(k) for k in keys) if keys else 6
    lines = [f"{name} — results", f"{'metric':<{width}}  " + "  ".join(f"{s:>8}" for s in splits)]
    for k in keys:
        cells = []
        for s in splits:
            v = metrics[s].get(k)
            cells.append(f"{v:8.4f}" if isinstance(v, float) else f"{v!s:>8}")
        lines.append(f"{k:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nestbench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of errors")
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

    run = sub.add_parser("run", help="train + evaluate one experiment spec (.gin)")
    run.add_argument("spec", help="experiment spec, e.g. experiments/slurp.gin")
    run.add_argument("--gin", action="append", default=[], help='extra binding, e.g. "OptimizerSetup.lr = 3e-4"')
    run.add_argument("--runs-dir", default=None, help="default: $NESTBENCH_RUNS or ./runs")
    run.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue an interrupted run: its folder, or the latest unfinished one of this experiment",
    )
    run.add_argument(
        "--wandb",
        choices=["online", "offline", "disabled"],
        default=None,
        help="default: online when a W&B API key is configured, else offline",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)

    pre = sub.add_parser(
        "pretrain", help="NEST self-supervised pretraining from a spec (.gin): from scratch or continued"
    )
    pre.add_argument("spec", help="pretraining spec, e.g. experiments/quickstart/pretrain.gin")
    pre.add_argument("--gin", action="append", default=[], help="extra binding, as for run")
    pre.add_argument("--runs-dir", default=None, help="default: $NESTBENCH_RUNS or ./runs")
    pre.add_argument("--resume", nargs="?", const="latest", default=None, help="as for run")
    pre.add_argument("--wandb", choices=["online", "offline", "disabled"], default=None, help="as for run")
    pre.add_argument("--quiet", action="store_true", help="no progress bars")
    pre.set_defaults(func=_pretrain)

    prep = sub.add_parser(
        "prepare", help="prepare a spec's data and fill its frozen encoder's feature cache, without training"
    )
    prep.add_argument("spec", help="experiment spec (.gin)")
    prep.add_argument("--gin", action="append", default=[], help="extra binding, as for run")
    prep.add_argument("--runs-dir", default=None, help="default: $NESTBENCH_RUNS or ./runs (data go to <runs>/_data)")
    prep.add_argument("--quiet", action="store_true", help="no progress bars")
    prep.set_defaults(func=_prepare)

    from tasks import DOWNLOAD_VERBS, SCORE_VERBS

    from .commands import add_verbs

    score = sub.add_parser("score", help="score existing predictions without training (one verb per task)")
    add_verbs(score.add_subparsers(dest="task", required=True), SCORE_VERBS, "task")
    score.set_defaults(func=_verb)

    ev = sub.add_parser(
        "evaluate", help="score a finished run's best checkpoint on its evaluation sets, or on sets bound by --gin"
    )
    ev.add_argument("run_dir", help="a finished run folder (runs/<experiment>/<run-id>)")
    ev.add_argument(
        "--gin",
        action="append",
        default=[],
        help="extra binding, e.g. \"Experiment.extra_tests = {'hard': {'manifest': 'h.jsonl', 'trials': 'h.txt'}}\"; "
        "when it binds new test sets, only those are scored",
    )
    ev.add_argument("--runs-dir", default=None, help="results store folder (default: the run's own runs folder)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_evaluate)

    board = sub.add_parser("leaderboard", help="render the NEST card tables with recorded results (markdown + PNG)")
    board.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="PATH",
        help="results store (.jsonl) or a folder of them; repeatable "
        "(default: leaderboards/results and the runs store)",
    )
    board.add_argument(
        "--runs-dir",
        default=None,
        help="runs folder whose results.jsonl is read by default ($NESTBENCH_RUNS or ./runs)",
    )
    board.add_argument("--out", default="leaderboards", help="folder for the boards and plots (default: leaderboards)")
    board.add_argument(
        "--skip-refused",
        action="store_true",
        help="leave out results whose convention does not fit their table (listed on the board)",
    )
    board.set_defaults(func=_leaderboard)

    download = sub.add_parser("download", help="download a corpus in its own layout (one verb per corpus)")
    add_verbs(download.add_subparsers(dest="corpus", required=True), DOWNLOAD_VERBS, "corpus")
    download.set_defaults(func=_verb)

    from .sweep.command import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    _verbose_anywhere(sub)
    return parser


def _verbose_anywhere(sub: argparse._SubParsersAction) -> None:
    """Accept ``-v`` after the subcommand too (``nestbench run spec.gin -v``), where users put it.
    ``SUPPRESS`` keeps a subcommand from resetting a ``-v`` given before it."""
    for parser in sub.choices.values():
        parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        for action in parser._subparsers._group_actions if parser._subparsers else ():
            _verbose_anywhere(action)


def _configure_logging(verbose: bool) -> None:
    """nestbench's own messages at INFO; other libraries only warn (Lightning prints its own lines)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nestbench").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("tasks").setLevel(logging.DEBUG if verbose else logging.INFO)


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user's input can cause (a bad path, value or file, a missing download, an unusable
    device): one line, exit code 2. Anything else is a bug in nestbench and keeps its traceback.
    nestbench's own errors subclass ``ValueError`` (``SpecError``, ``ManifestError``, ``AudioError``,
    ``VerificationDataError``, ``ConfigError``, ...) or are listed here."""
    from .checkpoint import CheckpointError
    from .recipes.slurp import SlurpDownloadError
    from .runner import PreflightError

    return (ValueError, OSError, CheckpointError, PreflightError, SlurpDownloadError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    prefix = f"nestbench {args.command}:"
    try:
        return args.func(args)
    except user_errors() as err:
        if args.verbose:
            traceback.print_exc()
        print(f"{prefix} error: {err}{_where_hint(err, args.verbose)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix} interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"{prefix} internal error: a bug in nestbench, not in your input; please report it with the "
            "traceback above",
            file=sys.stderr,
        )
        return 1


def _where_hint(err: BaseException, verbose: bool) -> str:
    """An error raised by nestbench's own code names what is wrong; one that came out of a library
    (a bare ``OSError`` from torch, say) may not, so it says how to see where it came from."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    origin = Path(tb.tb_frame.f_code.co_filename).resolve() if tb is not None else None
    ours = origin is not None and any(origin.is_relative_to(root) for root in _OWN_CODE)
    return "" if ours or verbose else " (nestbench -v shows where it came from)"


_OWN_CODE = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "tasks")


if __name__ == "__main__":
    sys.exit(main())
