"""``nestbench sweep``: argument parsing and printing over ``run_sweep`` / ``status_text``.

``nestbench/cli.py`` adds the subcommand with ``add_parser(sub)``; nothing heavy is imported until
the command runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="Optuna search over a sweep spec (.gin): one `nestbench run` process per trial",
        description="Run --trials N trials of a sweep spec, or print a study's state with --status STUDY.",
    )
    p.add_argument("spec", nargs="?", help="sweep spec, e.g. experiments/quickstart/sweep.gin")
    p.add_argument("--trials", type=int, help="trials the study should reach (complete, pruned or failed), all workers")
    p.add_argument(
        "--workers",
        type=workers,
        default="auto",
        help="trials run side by side by this process, splitting the cores; 'auto' (default): one per core, "
        "up to the trials left",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="default sqlite:///<runs>/sweeps/<study>/study.db; postgresql://user:pw@host:port/db lets sweep "
        "processes on several machines share one study",
    )
    p.add_argument("--study", default=None, help="study name (default: Sweep.study or <experiment>-<spec stem>)")
    p.add_argument("--status", metavar="STUDY", default=None, help="print the state of a study and exit")
    p.add_argument("--runs-dir", default=None, help="default: $NESTBENCH_RUNS or ./runs")
    p.add_argument(
        "--heartbeat", type=int, default=10, help="seconds; a trial silent for 3 heartbeats is re-run (default 10)"
    )
    p.add_argument("--wandb", choices=["online", "offline", "disabled"], default=None, help="passed to every trial")
    p.set_defaults(func=main)
    return p


def workers(value: str) -> int | str:
    """``--workers``: 'auto' or a positive integer, refused while parsing, before any work."""
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {value!r}")
    return count


def runs_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("NESTBENCH_RUNS") or "runs")


def main(args: argparse.Namespace) -> int:
    from .driver import SweepError

    if args.status:
        if args.spec or args.trials:
            raise SweepError("--status STUDY takes no spec and no --trials")
        print(status(args.status, args.storage, runs_dir(args.runs_dir)))
        return 0
    if not args.spec or args.trials is None:
        raise SweepError("give a sweep spec and --trials N (or --status STUDY)")
    from .driver import SweepOptions, run_sweep
    from .plan import load_sweep

    plan = load_sweep(args.spec)  # every spec mistake fails here, before a study exists
    options = SweepOptions(
        trials=args.trials,
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        runs_dir=runs_dir(args.runs_dir),
        heartbeat=args.heartbeat,
        wandb=args.wandb,
    )
    outcome = run_sweep(plan, options, echo=lambda line: print(line, flush=True))
    print()
    print(outcome.table)
    print()
    for path in outcome.files:
        print(f"wrote {path}")
    if outcome.interrupted:
        print(f"interrupted; continue with the same command (study {outcome.study} on {outcome.storage})")
        return 130
    if outcome.best is None:
        print("no trial completed; see the trial logs in", outcome.folder / "trials")
        return 1
    print(
        f"best: trial #{outcome.best.number}, {plan.objective} = {outcome.best.value:.4f}; "
        f"reproduce with: nestbench run {outcome.folder / 'best.gin'}"
    )
    return 0


def status(study: str, storage: str | None, runs: Path) -> str:
    import optuna

    from .definition import safe_study_name
    from .driver import SweepError
    from .report import status_text
    from .storage import check_storage, default_storage, normalise, open_storage

    url = normalise(storage) if storage else default_storage(runs, safe_study_name(study))
    if storage is None and not Path(url.split(":///", 1)[1]).is_file():
        known = sorted(p.name for p in (runs / "sweeps").glob("*") if (p / "study.db").is_file())
        raise SweepError(
            f"no study '{study}' under {runs / 'sweeps'}"
            + (f"; known: {', '.join(known)}" if known else "")
            + " (give --storage for a study kept elsewhere)"
        )
    check_storage(url)
    store = open_storage(url)
    try:
        loaded = optuna.load_study(study_name=study, storage=store)
    except KeyError:
        names = optuna.get_all_study_names(store)
        raise SweepError(f"no study '{study}' in that storage; known: {', '.join(names) or 'none'}") from None
    return status_text(loaded)
