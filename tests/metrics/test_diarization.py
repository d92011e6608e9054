"""DER equal to md-eval-22 as dscore runs it, on real AMI excerpts, plus each convention by hand.

Expected numbers: dscore (github.com/nryant/dscore, commit e02f949ac6592279300a2c33d03daf9e0c12fd27,
md-eval-22.pl, perl 5.36), reference = the five ``../shared/data/diarization/*.rttm`` concatenated in the
order dev00 trn04 trn05 trn08 tst00 (``ref.rttm``), hypothesis = ``tests/fixtures/diarization/hyp.rttm``:

    python score.py --collar {0,0.25} [-u all.uem] [--ignore_overlaps] -r ref.rttm -s hyp.rttm --n_digits 8

which prints the OVERALL DER in percent (``DER_PERCENT`` below). The component times are md-eval's own
``SCORED/MISSED/FALARM SPEAKER TIME`` and ``SPEAKER ERROR TIME`` lines (seconds, ``%f``), read from the
md-eval run that dscore makes (same trimming, merging and ``md-eval-22.pl -af -c C -u UEM [-1]``).
"""

import json
import logging
import math
from pathlib import Path

import pytest

from nestbench.cli import main
from nestbench.metrics.diarization import (
    DiarizationDataError,
    Turn,
    diarization_error,
    merge_turns,
    read_rttm,
    read_uem,
    score_diar_files,
    write_rttm,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "diarization"
HYP = Path(__file__).resolve().parents[1] / "fixtures" / "diarization" / "hyp.rttm"
URIS = ("dev00", "trn04", "trn05", "trn08", "tst00")

# (collar per side, UEM, skip overlap) -> md-eval seconds: scored speaker, missed, false alarm, speaker error
MD_EVAL = {
    (0.0, False, False): (163.874, 53.822, 5.377, 6.049),
    (0.0, True, False): (163.874, 53.822, 5.077, 6.049),
    (0.25, False, False): (99.022, 22.864, 1.9, 1.556),
    (0.25, True, False): (99.022, 22.864, 1.85, 1.556),
    (0.0, False, True): (78.805, 10.108, 5.29, 3.39),
    (0.0, True, True): (78.805, 10.108, 4.99, 3.39),
    (0.25, False, True): (60.26, 3.844, 1.9, 1.069),
    (0.25, True, True): (60.26, 3.844, 1.85, 1.069),
}
DER_PERCENT = {  # dscore's printed OVERALL DER
    (0.0, False, False): 39.81595616,
    (0.0, True, False): 39.63288868,
    (0.25, False, False): 26.57995193,
    (0.25, True, False): 26.52945810,
    (0.0, False, True): 23.84112683,
    (0.0, True, True): 23.46044033,
    (0.25, False, True): 11.30600730,
    (0.25, True, True): 11.22303352,
}
# dscore's per-file times with collar 0.25 and all.uem; trn05's 0.284 s of confusion is md-eval's mapping
# (chosen before collars); a mapping chosen after the collars gives 0.140 s there (tests/fixtures/diarization)
PER_FILE_025_UEM = {
    "dev00": (22.002, 0.15, 0.35, 0.0),
    "trn04": (9.961, 0.107, 0.0, 0.0),
    "trn05": (20.576, 0.0, 1.5, 0.284),
    "trn08": (13.901, 13.901, 0.0, 0.0),
    "tst00": (32.582, 8.706, 0.0, 1.272),
}


def _shared() -> Path:
    if not all((SHARED / f"{u}.rttm").is_file() for u in URIS):
        pytest.skip(f"{SHARED} not present (../shared is only beside the development checkout)")
    return SHARED


def _reference() -> dict:
    return {uri: turns for u in URIS for uri, turns in read_rttm(_shared() / f"{u}.rttm").items()}


def _assert_md_eval(score: dict, times: tuple[float, float, float, float]) -> None:
    total, missed, fa, conf = times
    assert score["total"] == pytest.approx(total, abs=1e-6)
    assert score["missed"] == pytest.approx(missed / total, abs=1e-6)
    assert score["false_alarm"] == pytest.approx(fa / total, abs=1e-6)
    assert score["confusion"] == pytest.approx(conf / total, abs=1e-6)
    assert score["der"] == pytest.approx((missed + fa + conf) / total, abs=1e-6)


@pytest.mark.parametrize("setting", list(MD_EVAL), ids=lambda s: f"collar{s[0]}-uem{s[1]}-skipoverlap{s[2]}")
def test_equals_dscore(setting):
    collar, with_uem, skip_overlap = setting
    uem = read_uem(_shared() / "all.uem") if with_uem else None
    score = diarization_error(_reference(), read_rttm(HYP), collar=collar, skip_overlap=skip_overlap, uem=uem)
    _assert_md_eval(score.as_dict(), MD_EVAL[setting])
    assert score.der * 100 == pytest.approx(DER_PERCENT[setting], abs=1e-6)
    assert score.convention["collar_per_side"] == collar and score.convention["overlap_scored"] is not skip_overlap


def test_per_file_equals_dscore():
    score = diarization_error(_reference(), read_rttm(HYP), collar=0.25, uem=read_uem(_shared() / "all.uem"))
    assert sorted(score.per_file) == list(URIS)  # zzz01 (hypothesis only) is not scored
    for uri, times in PER_FILE_025_UEM.items():
        _assert_md_eval(score.per_file[uri], times)


def test_cli_on_the_ami_excerpts_equals_dscore(tmp_path, capsys):
    ref = tmp_path / "ref.rttm"
    ref.write_text("".join((_shared() / f"{u}.rttm").read_text() for u in URIS))
    argv = ["score", "diar", "--ref", str(ref), "--hyp", str(HYP), "--collar", "0.25", "--uem", str(SHARED / "all.uem")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    _assert_md_eval(out, MD_EVAL[0.25, True, False])
    assert out["convention"]["uem"] == str(SHARED / "all.uem")


# --- conventions, by hand -------------------------------------------------------------------------


def T(start: float, end: float, speaker: str) -> Turn:
    return Turn(start, end - start, speaker)


def test_collar_is_per_side():
    # hypothesis starts 0.5 s late; a 0.25 s collar on each side of 0 and 10 leaves [0.25, 9.75] scored,
    # of which [0.25, 0.5] is missed (dscore: 9.5 s scored, 0.25 s missed). A total-width 0.25 s collar
    # would leave 0.375 s missed of 9.75 s.
    score = diarization_error({"f": [T(0, 10, "a")]}, {"f": [T(0.5, 10, "x")]}, collar=0.25)
    assert score.total == pytest.approx(9.5)
    assert score.missed == pytest.approx(0.25 / 9.5)
    assert score.der == pytest.approx(0.25 / 9.5)
    assert diarization_error({"f": [T(0, 10, "a")]}, {"f": [T(0.5, 10, "x")]}, collar=0.5).der == 0.0


def test_mapping_is_chosen_before_the_collars():
    # P speaks 3 x 0.6 s, Q 3 s; hypothesis H covers all of P and 1.5 s inside Q. Before collars H shares
    # 1.8 s with P and 1.5 s with Q, so md-eval maps H -> P. With 0.25 s collars only 3 x 0.1 s of P is
    # scored (H would then map to Q): with md-eval's mapping the 1.5 s of H inside Q is confusion.
    # dscore on these turns: scored 2.8 s, missed 1.0 s, speaker error 1.5 s.
    ref = {"f": [T(0, 0.6, "P"), T(1, 1.6, "P"), T(2, 2.6, "P"), T(5, 8, "Q")]}
    hyp = {"f": [T(0, 0.6, "H"), T(1, 1.6, "H"), T(2, 2.6, "H"), T(6, 7.5, "H")]}
    score = diarization_error(ref, hyp, collar=0.25)
    assert score.total == pytest.approx(0.3 + 2.5)
    assert score.confusion * score.total == pytest.approx(1.5)
    assert score.missed * score.total == pytest.approx(1.0)
    assert score.der == pytest.approx(2.5 / 2.8)
    assert score.convention["speaker_mapping"].startswith("md-eval")


def test_own_overlapping_turns_are_merged():
    # one speaker's two overlapping turns are 6 s of speech, not 8 (pyannote on raw turns counts 2 s twice)
    score = diarization_error({"f": [T(0, 4, "a"), T(2, 6, "a")]}, {"f": [T(0, 6, "x")]})
    assert score.total == pytest.approx(6.0) and score.der == 0.0
    assert merge_turns([T(0, 1, "a"), T(1, 2, "a"), T(0.5, 3, "b"), T(5, 6, "a")]) == [
        T(0, 2, "a"),
        T(0.5, 3, "b"),
        T(5, 6, "a"),
    ]


def test_reference_file_without_hypothesis_is_all_missed():
    ref = {"a": [T(0, 4, "s")], "b": [T(0, 2, "s"), T(3, 4, "t")]}
    score = diarization_error(ref, {"a": [T(0, 4, "x")]})
    assert score.per_file["b"] == {"der": 1.0, "missed": 1.0, "false_alarm": 0.0, "confusion": 0.0, "total": 3.0}
    assert score.total == pytest.approx(7.0) and score.missed == pytest.approx(3 / 7)


def test_hypothesis_only_file_is_ignored_with_a_warning(caplog):
    ref, hyp = {"a": [T(0, 4, "s")]}, {"a": [T(0, 3, "x")]}
    with caplog.at_level(logging.WARNING, logger="nestbench.metrics.diarization"):
        score = diarization_error(ref, {**hyp, "ghost": [T(0, 9, "y")]})
    assert "ghost" in caplog.text
    assert score.as_dict() == diarization_error(ref, hyp).as_dict()
    assert score.der == pytest.approx(0.25)


def test_without_uem_each_file_is_scored_over_its_turns():
    # the hypothesis speaks past the reference: without a UEM that is false alarm, with [0, 4] it is not
    ref, hyp = {"a": [T(1, 4, "s")]}, {"a": [T(1, 5, "x")]}
    assert diarization_error(ref, hyp).false_alarm == pytest.approx(1 / 3)
    assert diarization_error(ref, hyp, uem={"a": [(0.0, 4.0)]}).der == 0.0


def test_session_without_reference_speech(tmp_path, caplog):
    # md-eval does not score a file without reference turns: reported per file (dscore's 100% / 0%),
    # left out of the overall (dscore with a UEM naming such a file: per-file 100.00, overall 0.00).
    rttm = tmp_path / "ref.rttm"
    rttm.write_text("SPEAKER a 1 0.0 4.0 <NA> <NA> s <NA> <NA>\nSPEAKER quiet 1 2.0 0.0 <NA> <NA> s <NA> <NA>\n")
    ref = read_rttm(rttm)
    assert ref["quiet"] == []
    with caplog.at_level(logging.WARNING, logger="nestbench.metrics.diarization"):
        score = diarization_error(ref, {"a": [T(0, 4, "x")], "quiet": [T(1, 2, "y")]})
    assert "quiet" in caplog.text and score.no_reference_speech == ("quiet",)
    assert score.per_file["quiet"] == {"der": 1.0, "missed": 0.0, "false_alarm": 1.0, "confusion": 0.0, "total": 0.0}
    assert score.der == 0.0 and score.total == 4.0
    assert diarization_error(ref, {"a": [T(0, 4, "x")]}).per_file["quiet"]["der"] == 0.0
    nothing = diarization_error({"quiet": []}, {})
    assert (nothing.der, nothing.total) == (0.0, 0.0)


def test_write_rttm_round_trip(tmp_path):
    turns = {"b": [T(2.5, 3.25, "s2"), T(0.125, 1.0, "s1")], "a": [T(1, 2, "s1")]}
    path = write_rttm(tmp_path / "out.rttm", turns)
    lines = path.read_text().splitlines()
    assert lines[0] == "SPEAKER a 1 1.000 1.000 <NA> <NA> s1 <NA> <NA>"
    assert [x.split()[1] for x in lines] == ["a", "b", "b"] and lines[1].split()[3] == "0.125"
    assert all(len(x.split()) == 10 for x in lines)
    assert read_rttm(path) == {"a": [T(1, 2, "s1")], "b": [T(0.125, 1.0, "s1"), T(2.5, 3.25, "s2")]}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_other_records_and_comments_are_skipped(tmp_path):
    rttm = tmp_path / "r.rttm"
    rttm.write_text(
        "# a comment\n;; another\n\nSPKR-INFO a 1 <NA> <NA> <NA> unknown s <NA> <NA>\n"
        "LEXEME a 1 0.5 0.2 hello lex s <NA> <NA>\nSPEAKER a 1 0.5 1.5 <NA> <NA> s\n"
    )
    assert read_rttm(rttm) == {"a": [T(0.5, 2.0, "s")]}


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("SPEAKER a 1 0.0 1.0 <NA> <NA>", "at least 8 fields"),
        ("SPEAKER a 1 zero 1.0 <NA> <NA> s <NA> <NA>", "onset 'zero' is not a number"),
        ("SPEAKER a 1 0.0 1,5 <NA> <NA> s <NA> <NA>", "duration '1,5' is not a number"),
        ("SPEAKER a 1 0.0 -1.0 <NA> <NA> s <NA> <NA>", "duration '-1.0' must be a finite number >= 0"),
        ("SPEAKER a 1 -2.0 1.0 <NA> <NA> s <NA> <NA>", "onset '-2.0' must be"),
        ("SPEAKER a 1 nan 1.0 <NA> <NA> s <NA> <NA>", "onset 'nan' must be"),
        ("SPEAKER a 1 0.0 inf <NA> <NA> s <NA> <NA>", "duration 'inf' must be"),
    ],
)
def test_bad_rttm_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "hyp.rttm"
    path.write_text(f"SPEAKER a 1 0.0 1.0 <NA> <NA> s <NA> <NA>\n\n{line}\n")
    with pytest.raises(DiarizationDataError, match="hyp.rttm:3: ") as err:
        read_rttm(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [("a 1 0.0", "needs 4 fields"), ("a 1 5.0 2.0", "end 2.0 is before start 5.0"), ("a 1 x 2", "'x' is not")],
)
def test_bad_uem_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "all.uem"
    path.write_text(f";; comment\n{line}\n")
    with pytest.raises(DiarizationDataError, match="all.uem:2: ") as err:
        read_uem(path)
    assert message in str(err.value)


def test_uem_regions_are_merged_and_the_channel_ignored(tmp_path):
    path = tmp_path / "all.uem"
    path.write_text("a 1 0 5\na A 4 8\na 2 9 9\nb NA 1 2\n")
    assert read_uem(path) == {"a": [(0.0, 8.0)], "b": [(1.0, 2.0)]}


def test_uem_must_cover_every_reference_file(caplog):
    ref = {"a": [T(0, 1, "s")], "b": [T(0, 1, "s")], "c": [T(0, 1, "s")]}
    with pytest.raises(DiarizationDataError, match="reference files b, c"):
        diarization_error(ref, {}, uem={"a": [(0.0, 1.0)]})
    with caplog.at_level(logging.WARNING, logger="nestbench.metrics.diarization"):
        diarization_error({"a": ref["a"]}, {}, uem={"a": [(0.0, 1.0)], "z": [(0.0, 1.0)]})
    assert "UEM files not in the reference" in caplog.text and "z" in caplog.text


# --- command line ---------------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path) -> tuple[Path, Path]:
    ref, hyp = tmp_path / "ref.rttm", tmp_path / "hyp.rttm"
    write_rttm(ref, {"a": [T(0, 10, "s1"), T(10, 14, "s2")], "b": [T(0, 5, "s1")]})
    write_rttm(hyp, {"a": [T(0.5, 10, "x"), T(10, 12, "y")]})
    return ref, hyp


def test_cli_prints_metrics_per_file_and_convention(small, capsys):
    ref, hyp = small
    assert main(["score", "diar", "--ref", str(ref), "--hyp", str(hyp), "--collar", "0.25", "--skip-overlap"]) == 0
    out = json.loads(capsys.readouterr().out)
    # a: collars leave [0.25, 9.75] + [10.25, 13.75]; missed 0.25 + 1.75; b: collars leave [0.25, 4.75], all missed
    assert out["total"] == pytest.approx(9.5 + 3.5 + 4.5)
    assert out["missed"] == pytest.approx((0.25 + 1.75 + 4.5) / 17.5)
    assert out["per_file"]["b"]["der"] == 1.0 and set(out["per_file"]) == {"a", "b"}
    assert out["convention"] == {
        "collar_per_side": 0.25,
        "overlap_scored": False,
        "uem": None,
        "speaker_mapping": out["convention"]["speaker_mapping"],
        "scale": "fraction",
    }


def test_cli_refuses_with_the_flag_names(small, tmp_path, capsys):
    ref, hyp = small
    uem = tmp_path / "all.uem"
    uem.write_text("a 1 0 14\n")
    assert main(["score", "diar", "--ref", str(ref), "--hyp", str(hyp), "--uem", str(uem)]) == 2
    err = capsys.readouterr().err
    assert "--uem" in err and "--ref" in err and ": b" in err and "Traceback" not in err
    assert main(["score", "diar", "--ref", str(ref), "--hyp", str(hyp), "--collar", "-1"]) == 2
    assert "--collar must be" in capsys.readouterr().err
    empty = tmp_path / "empty.rttm"
    empty.write_text("")
    assert main(["score", "diar", "--ref", str(empty), "--hyp", str(hyp)]) == 2
    assert "nothing to score" in capsys.readouterr().err


def test_cli_bad_rttm_is_one_line_and_exit_2(small, tmp_path, nestbench, run_env):
    ref, _ = small
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER a 1 0.0 1.0 <NA> <NA> s <NA> <NA>\nSPEAKER a 1 1.0 nan <NA> <NA> s <NA> <NA>\n")
    proc = nestbench("score", "diar", "--ref", ref, "--hyp", bad, env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    errors = [x for x in proc.stderr.splitlines() if "error" in x]
    assert errors == [f"nestbench score: error: {bad}:2: duration 'nan' must be a finite number >= 0"]
    assert "Traceback" not in proc.stderr


def test_score_diar_files_matches_the_api(small):
    ref, hyp = small
    out = score_diar_files(ref, hyp, collar=0.0)
    assert out == diarization_error(read_rttm(ref), read_rttm(hyp)).as_dict()
    assert math.isclose(out["der"], out["missed"] + out["false_alarm"] + out["confusion"])
