"""CI check: the committed boards are exactly what the committed results and reference tables give."""

import shutil
from pathlib import Path

import pytest

from nestbench.leaderboard import build_leaderboards

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ROOT / "leaderboards"
REGENERATE = "nestbench leaderboard --results leaderboards/results (from the repository root)"


def test_committed_boards_match_committed_results(tmp_path):
    stores = sorted((BOARDS / "results").glob("*.jsonl"))
    if not stores:
        pytest.skip("no committed results in leaderboards/results/ yet")
    # Same layout as the repository (boards in leaderboards/, run folders rooted one level up), in a copy:
    # reading a store takes its lock, which would leave a file in the checkout.
    (tmp_path / "leaderboards" / "results").mkdir(parents=True)
    for store in stores:
        shutil.copy(store, tmp_path / "leaderboards" / "results" / store.name)
    build_leaderboards(tmp_path / "leaderboards" / "results", tmp_path / "leaderboards", runs_root=tmp_path)
    for name in ("nest_card.md", "quickstart.md"):
        committed = BOARDS / name
        assert committed.exists(), f"{committed} is missing: regenerate with `{REGENERATE}`"
        fresh = (tmp_path / "leaderboards" / name).read_bytes()
        assert fresh == committed.read_bytes(), f"{committed} is stale: regenerate with `{REGENERATE}` and commit it"
