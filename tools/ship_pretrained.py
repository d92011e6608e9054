"""Ship a finished quickstart pretraining run's model in the repository, with its provenance.

Usage (repository root, a clean checkout so the record names a commit without local changes):
  .venv/bin/nestbench pretrain experiments/quickstart/pretrain.gin
  .venv/bin/python tools/ship_pretrained.py runs/quickstart_pretrain/<run-id>

Writes ``experiments/quickstart/checkpoints/nest_mini_ssl.nemo`` (the run's ``nest.nemo``) and
``nest_mini_ssl.json`` (the run's record plus the command that rebuilds it). The test
``tests/pretrain/test_shipped_checkpoint.py`` checks the file against that record and the record
against the current spec, so a spec edited without rebuilding fails until these two commands are run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "quickstart" / "checkpoints" / "nest_mini_ssl.nemo"
REBUILD = (
    ".venv/bin/nestbench pretrain experiments/quickstart/pretrain.gin && "
    ".venv/bin/python tools/ship_pretrained.py runs/quickstart_pretrain/<run-id>"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished `nestbench pretrain` run folder")
    args = parser.parse_args(argv)
    record = json.loads((args.run_dir / "run.json").read_text(encoding="utf-8"))
    if record.get("git", {}).get("dirty"):
        print("refused: the run was made from a checkout with uncommitted changes", file=sys.stderr)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run_dir / "nest.nemo", OUT)
    shipped = {"rebuild_command": REBUILD, **record}
    OUT.with_suffix(".json").write_text(json.dumps(shipped, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 2**20:.1f} MiB) and its provenance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
