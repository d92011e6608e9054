"""Speaker-verification scoring: brute-force parity, hand-worked cases, ties, bad inputs and the real trial list."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from nestbench.metrics.verification import (
    CONVENTION,
    EER_METHOD,
    Trial,
    VerificationDataError,
    det_curve,
    pair_scores,
    plot_det,
    read_scores,
    read_trials,
    score_sv_files,
    verification_metrics,
)

SV_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sv"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- an independent reference ---------------------------------------------------------------------


def brute_points(scores, labels) -> list[tuple[float, float]]:
    """(p_fa, p_miss) at every distinct score and at +inf, counted trial by trial: O(n·k)."""
    pairs = [(float(s), bool(t)) for s, t in zip(scores, labels, strict=True)]
    n_target = sum(t for _, t in pairs)
    n_nontarget = len(pairs) - n_target
    points = []
    for threshold in [*sorted({s for s, _ in pairs}), math.inf]:
        miss = sum(1 for s, t in pairs if t and s < threshold)
        false_accept = sum(1 for s, t in pairs if not t and s >= threshold)
        points.append((false_accept / n_nontarget, miss / n_target))
    return points


def reference_metrics(points, p_targets) -> dict[str, float]:
    """EER as the linear crossing on the segment where p_fa - p_miss changes sign; minDCF by definition."""
    eer = None
    for (fa0, miss0), (fa1, miss1) in itertools.pairwise(points):
        if fa0 - miss0 > 0 >= fa1 - miss1:
            a = (fa0 - miss0) / ((fa0 - miss0) - (fa1 - miss1))
            eer = fa0 + a * (fa1 - fa0)
            break
    out = {"eer": eer}
    for p in p_targets:
        out[f"min_dcf_{p:g}"] = min(miss * p + fa * (1 - p) for fa, miss in points) / min(p, 1 - p)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_on_tied_random_scores(seed):
    rng = np.random.default_rng(seed)
    n = 400
    labels = rng.random(n) < rng.uniform(0.1, 0.5)
    scores = np.round(rng.normal(size=n) + 1.2 * labels, 1)  # ~60 distinct values: ties in almost every group
    assert len(np.unique(scores)) < n / 4
    p_targets = (0.01, 0.05, 0.3)
    points = brute_points(scores, labels)
    expected = reference_metrics(points, p_targets)

    got = verification_metrics(scores, labels, p_targets)
    p_fa, p_miss, thresholds = det_curve(scores, labels)

    np.testing.assert_allclose(np.column_stack([p_fa, p_miss]), np.array(points), rtol=0, atol=1e-12)
    assert thresholds[-1] == math.inf and np.all(np.diff(thresholds) > 0)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert 0 < got["eer"] < 0.5
    assert (got["n_target"], got["n_nontarget"]) == (int(labels.sum()), int((~labels).sum()))


def test_million_trials_exact_against_histogram_counts():
    rng = np.random.default_rng(7)
    n = 1_000_000
    labels = rng.random(n) < 0.1
    levels = rng.integers(0, 1000, n) + 150 * labels  # 1150 distinct scores, heavy ties
    got = verification_metrics(levels.astype(np.float64), labels)

    targets = np.bincount(levels[labels], minlength=1150)
    nontargets = np.bincount(levels[~labels], minlength=1150)
    present = np.flatnonzero(targets + nontargets)
    miss_below = np.r_[0, np.cumsum(targets)]
    fa_below = np.r_[0, np.cumsum(nontargets)]
    cuts = [*present, 1150]
    points = [(1 - fa_below[c] / nontargets.sum(), miss_below[c] / targets.sum()) for c in cuts]
    expected = reference_metrics(points, (0.01, 0.05))

    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["n_target"] + got["n_nontarget"] == n


# --- hand-worked cases ------------------------------------------------------------------------------


def test_four_trials_worked_by_hand():
    # One target (0.5), three non-targets (0.9, 0.3, 0.1). Operating points, accept score >= t:
    #   t=0.1: p_fa 3/3, p_miss 0   (accept all)
    #   t=0.3: p_fa 2/3, p_miss 0
    #   t=0.5: p_fa 1/3, p_miss 0   gap p_fa - p_miss = +1/3
    #   t=0.9: p_fa 1/3, p_miss 1   gap -2/3
    #   t=inf: p_fa 0,   p_miss 1   (reject all)
    # The gap changes sign between t=0.5 and t=0.9; a third of the way along: p_fa = p_miss = 1/3, and
    # the threshold is 0.5 + (0.9 - 0.5)/3. With P_tgt = 0.5 the normalised cost is p_miss + p_fa:
    # 1, 2/3, 1/3, 4/3, 1 -> 1/3. With P_tgt = 0.01 the best is "reject all": 0.01/0.01 = 1.
    got = verification_metrics([0.5, 0.9, 0.3, 0.1], [1, 0, 0, 0], p_targets=(0.5, 0.01))
    assert got == pytest.approx(
        {
            "eer": 1 / 3,
            "min_dcf_0.5": 1 / 3,
            "min_dcf_0.01": 1.0,
            "eer_threshold": 0.5 + 0.4 / 3,
            "n_target": 1,
            "n_nontarget": 3,
        }
    )
    p_fa, p_miss, thresholds = det_curve([0.5, 0.9, 0.3, 0.1], [True, False, False, False])
    assert p_fa.tolist() == pytest.approx([1, 2 / 3, 1 / 3, 1 / 3, 0])
    assert p_miss.tolist() == [0, 0, 0, 1, 1]
    assert thresholds.tolist() == [0.1, 0.3, 0.5, 0.9, math.inf]


def test_perfect_separation_scores_zero():
    got = verification_metrics([3.0, 4.0, 1.0, 2.0], [1, 1, 0, 0])
    assert got["eer"] == 0.0 and got["min_dcf_0.01"] == 0.0 and got["min_dcf_0.05"] == 0.0
    assert got["eer_threshold"] == 3.0  # the lowest target score: everything at or above it is a target


def test_fully_inverted_scores_one():
    got = verification_metrics([1.0, 2.0, 3.0, 4.0], [1, 1, 0, 0])
    assert got["eer"] == 1.0
    assert got["min_dcf_0.01"] == 1.0  # never better than the trivial "reject all" system


def test_default_keys_and_exact_crossing():
    # Two targets, two non-targets, interleaved: at t=0.6, p_fa = p_miss = 1/2 exactly (no interpolation).
    got = verification_metrics([0.9, 0.4, 0.6, 0.1], [1, 1, 0, 0])
    assert list(got) == ["eer", "min_dcf_0.01", "min_dcf_0.05", "eer_threshold", "n_target", "n_nontarget"]
    assert got["eer"] == 0.5 and got["eer_threshold"] == 0.6


# --- ties ------------------------------------------------------------------------------------------


def test_all_scores_equal_is_one_operating_point():
    # One distinct score -> one threshold (accept all) plus reject-all: the DET "curve" is the straight
    # segment from (p_fa 1, p_miss 0) to (0, 1), and the interpolated EER is its midpoint, 0.5.
    p_fa, p_miss, thresholds = det_curve([0.7] * 5, [1, 0, 1, 0, 0])
    assert p_fa.tolist() == [1.0, 0.0] and p_miss.tolist() == [0.0, 1.0]
    assert thresholds.tolist() == [0.7, math.inf]
    got = verification_metrics([0.7] * 5, [1, 0, 1, 0, 0])
    assert got["eer"] == 0.5 and got["eer_threshold"] == 0.7
    assert got["min_dcf_0.01"] == 1.0


def test_mixed_tie_is_never_split():
    # Score 1.0 is held by one target and one non-target: they move together, so no point has p_fa 1/2
    # with p_miss 0 (which splitting the tie in file order would create).
    p_fa, p_miss, _ = det_curve([2.0, 1.0, 1.0, 0.0], [1, 1, 0, 0])
    assert list(zip(p_fa, p_miss, strict=True)) == [(1.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.0, 1.0)]
    # The crossing is halfway along the segment from (1/2, 0) to (0, 1/2).
    assert verification_metrics([2.0, 1.0, 1.0, 0.0], [1, 1, 0, 0])["eer"] == 0.25
    # ...whatever order the tied trials come in.
    assert verification_metrics([1.0, 0.0, 2.0, 1.0], [0, 0, 1, 1])["eer"] == 0.25


# --- bad arrays ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([], [], "no trials"),
        ([0.1, 0.2], [1, 1], "all 2 trials are target trials"),
        ([0.1, 0.2], [0, 0], "all 2 trials are non-target trials"),
        ([0.1, float("nan"), 0.3], [1, 0, 0], "non-finite score.*index 1"),
        ([0.1, 0.2, float("inf")], [1, 0, 0], "non-finite score.*index 2"),
        ([0.1, 0.2], [1, 2], "labels must be booleans or 0/1"),
        ([0.1, 0.2], [1, 0, 0], "one length"),
    ],
)
def test_bad_arrays_are_refused(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        verification_metrics(scores, labels)


def test_bad_p_target_is_refused():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        verification_metrics([0.1, 0.2], [1, 0], p_targets=(0.01, 1.0))


# --- files -----------------------------------------------------------------------------------------


def test_read_trials_both_formats_and_blank_lines(tmp_path):
    vox = read_trials(write(tmp_path / "vox.txt", "1 a b\n\n0 a c\n   \n"))
    kaldi = read_trials(write(tmp_path / "kaldi.txt", "a b target\na c nontarget\n"))
    assert vox == [Trial(1, "a", "b", 1), Trial(0, "a", "c", 3)]
    assert [(t.label, t.enroll, t.test) for t in kaldi] == [(t.label, t.enroll, t.test) for t in vox]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"t\.txt: no trials"),
        ("\n\n", r"t\.txt: no trials"),
        ("1 a b\n0 a\n", r"t\.txt:2: expected VoxCeleb '1\|0 <enroll> <test>', the format of line 1; got '0 a'"),
        ("1 a b\n2 a c\n", r"t\.txt:2: expected VoxCeleb"),
        ("a b target\na c tgt\n", r"t\.txt:2: expected Kaldi '<enroll> <test> target\|nontarget'"),
        ("1 a b\na c nontarget\n", r"t\.txt:2: expected VoxCeleb .* format of line 1"),
        ("\nyes a b\n", r"t\.txt:2: expected a trial, VoxCeleb .* or Kaldi"),
        ("1 a b\n0 a c\n0 a b\n", r"t\.txt:3: duplicate trial a b, already on line 1"),
        ("1 a b\n1 a c\n", r"t\.txt: 2 trials but no non-target trials"),
        ("a b nontarget\n", r"t\.txt: 1 trials but no target trials"),
    ],
)
def test_bad_trial_lists_name_file_and_line(tmp_path, text, message):
    with pytest.raises(VerificationDataError, match=message):
        read_trials(write(tmp_path / "t.txt", text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b 0.5\na c\n", r"s\.txt:2: expected '<enroll> <test> <score>' \(3 fields\), got 2"),
        ("a b 0.5 extra\n", r"s\.txt:1: expected .* got 4"),
        ("a b 0.5\n\na c high\n", r"s\.txt:3: score 'high' is not a number"),
        ("a b 0.5\na c 0.1\na b 0.7\n", r"s\.txt:3: second score for a b, already scored on line 1"),
    ],
)
def test_bad_score_files_name_file_and_line(tmp_path, text, message):
    with pytest.raises(VerificationDataError, match=message):
        read_scores(write(tmp_path / "s.txt", text))


def test_read_scores_any_order(tmp_path):
    scores = read_scores(write(tmp_path / "s.txt", "b a -1.5\n\na b 2e-1\n"))
    assert scores == {("b", "a"): -1.5, ("a", "b"): 0.2}


def test_pair_scores_matches_by_ids_not_order():
    trials = [Trial(1, "a", "b", 1), Trial(0, "a", "c", 2), Trial(0, "b", "c", 3)]
    scores = {("b", "c"): 0.3, ("x", "y"): 9.0, ("a", "c"): 0.2, ("a", "b"): 0.1}
    values, labels = pair_scores(trials, scores)
    assert values.dtype == np.float64 and labels.dtype == bool
    assert values.tolist() == [0.1, 0.2, 0.3] and labels.tolist() == [True, False, False]


def test_pair_scores_lists_missing_trials():
    trials = [Trial(i % 2, "e", f"t{i}", i + 1) for i in range(12)]
    with pytest.raises(VerificationDataError) as error:
        pair_scores(trials, {("e", "t0"): 0.0}, source="sys.scores")
    message = str(error.value)
    assert message.startswith("sys.scores: 11 of 12 trials have no score: e t1 (trial line 2), e t2 (trial line 3)")
    assert "e t10 (trial line 11), and 1 more" in message and "e t11" not in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_pair_scores_refuses_non_finite(bad):
    trials = [Trial(1, "a", "b", 1), Trial(0, "a", "c", 4)]
    with pytest.raises(VerificationDataError, match=r"s: score .* for trial a c \(trial line 4\) is not finite"):
        pair_scores(trials, {("a", "b"): 0.1, ("a", "c"): bad}, source="s")


def test_score_files_permutation_invariant_and_counts_unused(tmp_path):
    rng = np.random.default_rng(3)
    lines, score_lines = [], []
    for i in range(60):
        label = int(i % 3 == 0)
        lines.append(f"{label} enr{i % 7} tst{i}")
        score_lines.append(f"enr{i % 7} tst{i} {round(rng.normal() + label, 1)}")
    score_lines += ["ghost one 0.5", "ghost two 0.7"]  # not in the trial list
    trials = write(tmp_path / "trials.txt", "\n".join(lines) + "\n")
    ordered = write(tmp_path / "ordered.txt", "\n".join(score_lines) + "\n")
    shuffled = write(tmp_path / "shuffled.txt", "\n".join(rng.permutation(score_lines)) + "\n")

    first = score_sv_files(trials, ordered)
    second = score_sv_files(trials, shuffled)
    assert first == second
    assert first["n_trials"] == 60 and first["unused_scores"] == 2
    assert (first["n_target"], first["n_nontarget"]) == (20, 40)
    assert first["convention"] == CONVENTION and first["convention"]["eer_method"] == EER_METHOD
    assert first["convention"]["accept"] == "score >= threshold"
    assert first["convention"]["ties"] == "one operating point"


def test_score_files_missing_score_names_the_file(tmp_path):
    trials = write(tmp_path / "trials.txt", "1 a b\n0 a c\n")
    scores = write(tmp_path / "s.txt", "a b 0.9\n")
    with pytest.raises(VerificationDataError, match=r"s\.txt: 1 of 2 trials have no score: a c \(trial line 2\)"):
        score_sv_files(trials, scores)


# --- the real trial list ---------------------------------------------------------------------------


@pytest.fixture
def sv_data() -> Path:
    if not (SV_DATA / "trials.txt").is_file():
        pytest.skip(f"{SV_DATA} is absent")
    return SV_DATA


def test_real_voxceleb_trial_list(sv_data, tmp_path):
    trials = read_trials(sv_data / "trials.txt")
    assert len(trials) == 55 and sum(t.label for t in trials) == 12
    assert trials[0] == Trial(0, "audio/1088-134315-0000.wav", "audio/1988-24833-0000.flac", 1)
    assert all((sv_data / t.enroll).is_file() and (sv_data / t.test).is_file() for t in trials)

    # The same list in Kaldi format reads to the same trials.
    kaldi = "".join(f"{t.enroll} {t.test} {'target' if t.label else 'nontarget'}\n" for t in trials)
    assert read_trials(write(tmp_path / "kaldi.txt", kaldi)) == trials

    # Oracle scores from utt2spk (1 same speaker, 0 otherwise), written in reverse order: EER and minDCF 0.
    speaker = dict(line.split() for line in (sv_data / "utt2spk").read_text().splitlines() if line.strip())
    spk = lambda path: speaker[Path(path).stem]
    oracle = [f"{t.enroll} {t.test} {int(spk(t.enroll) == spk(t.test))}" for t in reversed(trials)]
    result = score_sv_files(sv_data / "trials.txt", write(tmp_path / "oracle.txt", "\n".join(oracle)))
    assert result["eer"] == 0.0 and result["min_dcf_0.01"] == 0.0 and result["min_dcf_0.05"] == 0.0
    assert (result["n_trials"], result["n_target"], result["n_nontarget"], result["unused_scores"]) == (55, 12, 43, 0)


# --- DET plot --------------------------------------------------------------------------------------


def test_det_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random(2000) < 0.2
    curves, eers = {}, {}
    for name, separation in (("good", 3.0), ("weak", 1.0)):
        scores = rng.normal(size=labels.size) + separation * labels
        curves[name] = det_curve(scores, labels)[:2]
        eers[name] = verification_metrics(scores, labels)["eer"]
    out = plot_det(tmp_path / "plots" / "det.png", curves, eers, title="two systems")
    assert out == tmp_path / "plots" / "det.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in out.parent.iterdir()] == ["det.png"]  # no temporary file left behind
