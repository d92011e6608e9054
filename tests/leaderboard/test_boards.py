"""Boards end to end: byte-identical output, deltas and best marks, provenance footnotes, plots."""

import json
import random
import shutil
from pathlib import Path

import pytest

from nestbench.leaderboard import build_leaderboards

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "leaderboard"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _build(tmp_path: Path, name: str, lines: list[str] | None = None, **kwargs) -> Path:
    """Boards from the accepted fixture (or ``lines``) in ``tmp_path/name/leaderboards``; run folders rooted there."""
    root = tmp_path / name
    (root / "results").mkdir(parents=True)
    text = (FIXTURES / "accepted.jsonl").read_text() if lines is None else "".join(lines)
    (root / "results" / "store.jsonl").write_text(text)
    build_leaderboards(root / "results", root / "leaderboards", runs_root=root, **kwargs)
    return root / "leaderboards"


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("boards"), "a")


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_same_results_give_identical_bytes_in_any_order(boards, tmp_path):
    lines = (FIXTURES / "accepted.jsonl").read_text().splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    shuffled = [json.dumps(json.loads(line)) + "\n" for line in lines]  # other key order too
    again = _build(tmp_path, "b", shuffled)
    names = sorted(p.name for p in boards.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (boards / name).read_bytes() == (again / name).read_bytes(), name


def test_card_rows_come_first_with_the_card_numbers(boards):
    card = (boards / "nest_card.md").read_text()
    assert "| NEST card | ssl_en_nest_xlarge_v1.0 | [ASR fine-tuned from NEST-XL]" in card
    assert "| fine-tuned | 14.43 | **8.07** | 8.70 | 16.18 |" in card
    assert "| fine-tuned | 29.50 | 22.61 | 39.27 |" in card
    assert "| fine-tuned | 14.60 | 6.08 | 9.57 | 15.40 |" in card


def test_cells_show_value_delta_and_best_mark(boards):
    card = (boards / "nest_card.md").read_text()
    slurp = card[card.index("## SLURP") :]
    assert "| fine-tuned | **89.79** | 79.61 |" in slurp  # NEST-L card row: best intent acc
    assert "| fine-tuned | 89.04 | **80.31** |" in slurp  # NEST-XL card row: best SLU-F1
    ours = _line(slurp, "| nestbench[^slurp-1]")
    assert ours.endswith("| fine-tuned | 88.75 ± 0.35 (-1.04) | 79.25 ± 0.35 (-0.36) |")
    frozen = _line(slurp, "| nestbench[^slurp-2]")
    assert frozen.endswith(
        "| `experiments/slurp_frozen.gin` | frozen, SUPERB weights | 71.00 (-18.79) | 61.00 (-18.61) |"
    )


def test_not_run_is_a_dash(boards):
    card = (boards / "nest_card.md").read_text()
    asr = _line(card, "| nestbench[^asr_mcv-1]")
    assert asr.endswith("| fine-tuned | — | 8.50 (+0.43) | — | — |")
    assert "| nestbench | — | not run yet | — | — | — | — |" in card  # AST: no runs yet
    assert card.count("not run yet") == 3  # AST, diarization, speaker verification


def test_footnotes_carry_provenance_and_links(boards):
    card = (boards / "nest_card.md").read_text()
    note = _line(card, "[^slurp-1]:")
    assert note.startswith("[^slurp-1]: mean ± std over seeds 1, 2; 2 of 3 run(s) used.")
    assert "`slurp/20261201-090000`: seed 1, commit `0a38aff11111`, config `111111111111`, 2026-12-01" in note
    assert "4× NVIDIA H100 80GB HBM3, bf16-mixed" in note
    assert "[run folder](../runs/slurp/20261201-090000)" in note  # relative run_dir: linked from the board
    assert "run folder `/data/nestbench/runs/slurp/20261202-090000`" in note  # absolute: printed as recorded
    asr = _line(card, "[^asr_mcv-1]:")
    assert "commit unknown" in asr and "Overrides: `ASR_LANGUAGE = 'de'`." in asr
    quick = (boards / "quickstart.md").read_text()
    assert "(dirty)" in _line(quick, "[^slurp-1]:") and "CPU, 2 threads, 32-true" in quick


def test_quickstart_board_has_only_quickstart_rows(boards):
    card = (boards / "nest_card.md").read_text()
    quick = (boards / "quickstart.md").read_text()
    assert "quickstart_slurp/" not in card
    assert "NEST card |" not in quick and "not comparable with the NEST model card" in quick
    assert "`slurp/" not in quick and "asr_mcv_de/" not in quick
    assert _line(quick, "| nestbench[^slurp-1]").endswith("| fine-tuned | 31.00 ± 1.41 | 26.00 ± 1.41 | 4.17 ± 0.00 |")
    assert "No quickstart results yet for: Multilingual ASR" in quick


def test_plots_are_written_beside_the_boards(boards):
    expected = {f"nest_card_{t}.png" for t in ("asr_mcv", "ast_fleurs", "diarization", "slurp")} | {
        "quickstart_slurp.png"
    }
    assert {p.name for p in boards.glob("*.png")} == expected  # speaker verification: nothing to draw yet
    for name in expected:
        data = (boards / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert b"matplotlib" not in data  # no Software tag carrying a version
    card = (boards / "nest_card.md").read_text()
    assert "![SLURP — spoken language understanding](nest_card_slurp.png)" in card


def test_skipping_refused_results_lists_them_on_the_board(tmp_path):
    lines = (FIXTURES / "accepted.jsonl").read_text() + (FIXTURES / "refused.jsonl").read_text()
    boards = _build(tmp_path, "c", lines.splitlines(keepends=True), strict=False)
    card = (boards / "nest_card.md").read_text()
    section = card[card.index("## Refused results") :]
    assert "- `asr_mcv_en/20261209-090000` → Multilingual ASR" in section
    assert "convention.normalization is 'whisper_en', required: 'none'" in section
    assert "`slurp/20261210-090000`" in section and "`sortformer_callhome/20261211-090000`" in section
    assert "20261209" not in card[: card.index("## Refused results")]  # listed, never placed


def test_no_results_still_writes_both_boards(tmp_path):
    boards = _build(tmp_path, "d", [])
    assert "| fine-tuned | **89.79** | 79.61 |" in (boards / "nest_card.md").read_text()
    assert "No quickstart results yet: run" in (boards / "quickstart.md").read_text()
    assert not list(boards.glob("quickstart_*.png"))


def test_stale_plots_are_removed(tmp_path):
    boards = _build(tmp_path, "e")
    shutil.rmtree(tmp_path / "e" / "results")
    (tmp_path / "e" / "results").mkdir()
    build_leaderboards(tmp_path / "e" / "results", boards, runs_root=tmp_path / "e")
    assert not (boards / "quickstart_slurp.png").exists()


def test_sv_cells_name_each_boards_split(tmp_path):
    base = json.loads((FIXTURES / "accepted.jsonl").read_text().splitlines()[0])
    convention = {"units": "fraction", "eer_method": "interpolated ROC crossing", "score_norm": "none"}
    test = {"eer": 0.125, "min_dcf_0.01": 0.5, "min_dcf_0.05": 0.4, "baseline_eer": 0.25}
    quick = {
        **base,
        "experiment": "quickstart_sv",
        "task": "sv",
        "board": "quickstart",
        "convention": convention,
        "metrics": {"dev": {"eer": 0.1}, "test": test},
        "sets": {"test": {"manifest": "test.jsonl", "trial_list": "sv-mini-test"}},
    }
    out = _build(tmp_path, "sv", [json.dumps(quick) + "\n"])
    quickstart = (out / "quickstart.md").read_text()
    sv = quickstart[quickstart.index("## Speaker verification") :]
    assert "Our cells: `metrics.test.<metric>`" in sv
    assert "EER, mean log-mel cosine baseline (%) ↓" in sv
    assert _line(sv, "| nestbench[^speaker_verification-1]").endswith("| 12.50 | 0.500 | 0.400 | 25.00 |")
    card = (out / "nest_card.md").read_text()
    assert "Our cells: `metrics.voxceleb1_o.<metric>`" in card[card.index("## Speaker verification") :]


def _with_layer_weights(peaks: dict[str, int]) -> list[str]:
    """The accepted fixture with learned SUPERB weights (18 layers, peaked at ``peaks[run_id]``) on the frozen runs."""
    lines = []
    for line in (FIXTURES / "accepted.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["run_id"] in peaks:
            weights = {str(i): 0.15 if i == peaks[record["run_id"]] else 0.05 for i in range(18)}
            record["layer_weights"] = {"protocol": "superb", "temperature": 1.0, "weights": weights}
        lines.append(json.dumps(record) + "\n")
    return lines


def test_layer_use_of_frozen_rows_is_drawn_and_linked(tmp_path):
    peaks = {"20261204-090000": 3, "20261205-090000": 12}
    boards = _build(tmp_path, "layers", _with_layer_weights(peaks))
    data = (boards / "nest_card_layers.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000 and b"matplotlib" not in data
    card = (boards / "nest_card.md").read_text()
    section = card[card.index("## Layer use (frozen encoders)") :]
    assert "![Layer use of frozen encoders](nest_card_layers.png)" in section
    note = _line(card, "[^slurp-2]:")  # the frozen row: its used run's bar chart beside its run folder
    (used,) = [run for run in peaks if f"slurp_frozen/{run}`" in note]
    assert f"[run folder](../runs/slurp_frozen/{used})" in note
    assert f"[layer weights](../runs/slurp_frozen/{used}/layer_weights.png)" in note
    assert "layer weights" not in _line(card, "[^slurp-1]:")  # fine-tuned: no weights
    # the quickstart board has no frozen row: no figure, no section
    assert not (boards / "quickstart_layers.png").exists()
    assert "Layer use" not in (boards / "quickstart.md").read_text()

    # the row's profile is its used run's (best dev of its seed), not a mix with the other run
    from nestbench.leaderboard import load_tables, place, read_results
    from nestbench.leaderboard.aggregate import row_layer_weights

    rows = place(read_results(tmp_path / "layers" / "results"), load_tables()).rows[("full", "slurp")]
    (frozen,) = [row for row in rows if row.mode == "frozen"]
    weights = row_layer_weights(frozen)
    assert max(weights, key=weights.get) == str(peaks[used]) and sum(weights.values()) == pytest.approx(1.0)


def test_layer_use_figure_is_removed_when_no_record_has_weights(tmp_path):
    boards = _build(tmp_path, "stale", _with_layer_weights({"20261204-090000": 3, "20261205-090000": 3}))
    assert (boards / "nest_card_layers.png").exists()
    (tmp_path / "stale" / "results" / "store.jsonl").write_text((FIXTURES / "accepted.jsonl").read_text())
    build_leaderboards(tmp_path / "stale" / "results", boards, runs_root=tmp_path / "stale")
    assert not (boards / "nest_card_layers.png").exists()
    assert "Layer use" not in (boards / "nest_card.md").read_text()
