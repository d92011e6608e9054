"""Self-supervised vs random initialisation of the encoder, on the offline quickstarts: the NEST paper's
claim in miniature. Same spec, same head, same budget, several seeds; only the encoder's start differs.

Usage:
  .venv/bin/python tools/compare_init.py --checkpoint experiments/quickstart/checkpoints/nest_mini_ssl.nemo
  .venv/bin/python tools/compare_init.py --checkpoint ... --setups slurp_frozen,sv --seeds 0 1 2 --jobs 2
  .venv/bin/nestbench leaderboard        # each (setup, arm) is a row, mean ± std over seeds, in its table

Every (setup, arm, seed) is one ``nestbench run`` of the setup's quickstart spec with:
  ENCODER = '<checkpoint>'                    both arms: the pretrained model's architecture
  EncoderSetup.init_exclude = ('encoder.',)   the random arm: every encoder weight keeps its fresh,
                                              seed-drawn initialisation (the mel front end has no weights)
  Experiment.seed = <seed>
  TrainerSetup.cpu_threads = 1                results that do not depend on --jobs
First every combination's data and feature cache are prepared one at a time (``nestbench prepare``), then
the runs go ``--jobs`` at a time. A combination whose record is already in the runs folder's results
store is skipped, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# setup -> (quickstart spec, extra bindings); the mode is the spec's unless bound here
SETUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "slurp": ("experiments/quickstart/slurp.gin", ()),  # fine-tuned
    "slurp_frozen": ("experiments/quickstart/slurp_frozen.gin", ()),
    "sv": ("experiments/quickstart/sv.gin", ()),  # frozen
    "sv_finetune": ("experiments/quickstart/sv.gin", ("EncoderSetup.mode = 'finetune'",)),
    "asr": ("experiments/quickstart/asr.gin", ()),
    # does pretraining pay off when labels are scarce? 500 of the 3,000 transcribed utterances, and
    # 48 epochs so the steps (1,500) stay near the full run's 2,250
    "asr_500": ("experiments/quickstart/asr.gin", ("SpeechTextMiniData.n_train = 500", "TrainerSetup.max_epochs = 48")),
    "ast": ("experiments/quickstart/ast.gin", ()),
    "ast_500": ("experiments/quickstart/ast.gin", ("SpeechTextMiniData.n_train = 500", "TrainerSetup.max_epochs = 48")),
    "diarization": ("experiments/quickstart/diarization.gin", ()),
}
ARMS = {"ssl": (), "random": ("EncoderSetup.init_exclude = ('encoder.',)",)}


def bindings(setup: str, arm: str, seed: int, checkpoint: str) -> list[str]:
    return [
        f"ENCODER = '{checkpoint}'",
        *SETUPS[setup][1],
        *ARMS[arm],
        f"Experiment.seed = {seed}",
        "TrainerSetup.cpu_threads = 1",
    ]


def done(runs: Path, spec: str, overrides: list[str]) -> bool:
    store = runs / "results.jsonl"
    if not store.exists():
        return False
    for line in store.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line) if line.strip() else {}
        if rec.get("spec", "").endswith(spec) and rec.get("overrides") == overrides:
            return True
    return False


def command(verb: str, spec: str, overrides: list[str], runs: Path) -> list[str]:
    gin = [a for o in overrides for a in ("--gin", o)]
    return [sys.executable, "-m", "nestbench.cli", verb, str(ROOT / spec), *gin, "--runs-dir", str(runs), "--quiet"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="the pretrained NEST .nemo (both arms take its shape)")
    parser.add_argument("--setups", default="slurp,slurp_frozen,sv,sv_finetune", help=f"comma list of {list(SETUPS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each on one CPU thread)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--wandb", default="disabled", choices=["online", "offline", "disabled"])
    args = parser.parse_args(argv)
    runs = Path(args.runs_dir)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = sorted(set(setups) - set(SETUPS))
    if unknown:
        parser.error(f"unknown setups {unknown}; known: {list(SETUPS)}")
    todo = []
    for setup in setups:
        for arm in ARMS:
            for seed in args.seeds:
                overrides = bindings(setup, arm, seed, args.checkpoint)
                spec = SETUPS[setup][0]
                if done(runs, spec, overrides):
                    print(f"done already: {setup} {arm} seed {seed}", flush=True)
                else:
                    todo.append((setup, arm, seed, spec, overrides))
    for *_, spec, overrides in todo:  # corpora and feature caches, one writer at a time
        subprocess.run(command("prepare", spec, overrides, runs), check=True, stdout=subprocess.DEVNULL)

    def run(job) -> tuple[str, int]:
        setup, arm, seed, spec, overrides = job
        proc = subprocess.run([*command("run", spec, overrides, runs), "--wandb", args.wandb],
                              capture_output=True, text=True)  # fmt: skip
        label = f"{setup} {arm} seed {seed}"
        print(f"{label}: exit {proc.returncode}\n{proc.stdout.strip()}", flush=True)
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr, flush=True)
        return label, proc.returncode

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        failed = [label for label, rc in pool.map(run, todo) if rc]
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
