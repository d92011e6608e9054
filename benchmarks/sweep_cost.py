"""What a sweep costs next to one run, timed on this machine in one go.

Times ``nestbench run`` of the experiment a sweep spec includes (default: the frozen-encoder quickstart),
then ``nestbench sweep`` of that spec with ``--trials 10``, and prints both, their ratio (target
<= 2.5x; ten separate runs cost about 10x) and what the trials did. Each phase starts cold, with its own
runs folder and feature cache, as a first run and a first sweep would: the sweep's saving is that its
trials share the data, the cached encoder features and the imports, and that bad trials are pruned.
Times are wall-clock: run it on an otherwise idle machine.

    .venv/bin/python benchmarks/sweep_cost.py [--spec experiments/quickstart/sweep.gin] [--trials 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict, log: Path) -> float:
    """Wall seconds of one command, output to ``log``."""
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(f"{' '.join(argv[2:4])} failed (exit {code}); see {log}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="experiments/quickstart/sweep.gin")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument(
        "--workers", type=int, default=2, help="trials side by side (default 2: one per core of a 2-core laptop)"
    )
    parser.add_argument("--wandb", default="disabled", choices=["online", "offline", "disabled"])
    parser.add_argument("--keep", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from nestbench.sweep.plan import load_sweep

    with tempfile.TemporaryDirectory(prefix="sweep-cost-") as tmp:
        work = Path(args.keep or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        os.environ["NESTBENCH_CACHE"] = str(work / "cache-plan")
        plan = load_sweep(ROOT / args.spec)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("NESTBENCH_TRIAL", None)
        load_before = os.getloadavg()[0]

        def nestbench(*words) -> list[str]:
            return [sys.executable, "-m", "nestbench.cli", *map(str, words), "--wandb", args.wandb]

        run = nestbench("run", plan.experiment_spec, "--quiet", "--runs-dir", work / "run")
        run_wall = timed(run, {**env, "NESTBENCH_CACHE": str(work / "cache-run")}, work / "run.log")
        sweep = nestbench(
            "sweep", ROOT / args.spec, "--trials", args.trials, "--workers", args.workers, "--runs-dir", work / "sweep"
        )
        sweep_wall = timed(sweep, {**env, "NESTBENCH_CACHE": str(work / "cache-sweep")}, work / "sweep.log")

        (record,) = [json.loads(line) for line in (work / "run" / "results.jsonl").read_text().splitlines()]
        states = summary(work / "sweep", plan.study)
        cores = len(os.sched_getaffinity(0))
        print(f"machine: {cores} cores, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        print(
            f"one run: {run_wall:7.1f} s  {plan.experiment_spec.relative_to(ROOT)}, "
            f"{plan.objective} {record['metrics']['dev'][plan.metric]:.4f}"
        )
        print(f"sweep:   {sweep_wall:7.1f} s  {args.trials} trials, {args.workers} worker(s), {states}")
        print(f"ratio:   {sweep_wall / run_wall:7.2f} x  (target <= 2.5x; ten separate runs ~ 10x)")
        if args.keep:
            print(f"kept in {work}")


def summary(runs: Path, study: str) -> str:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{runs / 'sweeps' / study / 'study.db'}")
    counts: dict[str, int] = {}
    for t in loaded.trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    best = loaded.best_trial
    return f"best {best.value:.4f} (#{best.number}); " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


if __name__ == "__main__":
    main()
