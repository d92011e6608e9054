"""Every documented mistake, through the real CLI: one ``nestbench <command>: error:`` line naming the
thing, exit code 2, no traceback, and nothing half-created. Nothing here trains."""

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "parity" / "tiny"
SLURP = ROOT / "tests" / "fixtures" / "slurp"


def _refused(proc, command: str, *names: str) -> str:
    """The one error line, after checking exit code, traceback and that it names each of ``names``."""
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [x for x in err.splitlines() if x.startswith(f"nestbench {command}: error: ")]
    assert len(lines) == 1, err[-3000:]
    for name in names:
        assert name in err, (name, err[-3000:])
    return err


@pytest.fixture
def cli(nestbench, run_env, tmp_path):
    """``cli(*args)``: the CLI run in ``tmp_path`` (runs, caches and outputs all inside it)."""
    return lambda *args: nestbench(*args, env=run_env, cwd=tmp_path)


# --- run ------------------------------------------------------------------------------------------
def test_run_missing_spec(cli, tmp_path):
    _refused(cli("run", "experiments/nope.gin"), "run", "experiments/nope.gin", "not found")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("OptimizerSetup.lr = -1e-3", ("OptimizerSetup.lr", "--gin override #2", "must be > 0")),
        ("TrainerSetup.batch_size = 'eight'", ("TrainerSetup.batch_size", "--gin override #2", "must be an int")),
        ("TrainerSetup.max_epochs = 0", ("TrainerSetup.max_epochs", ">= 1")),
        ("EncoderSetup.mode = 'frozn'", ("EncoderSetup.mode", "one of 'frozen', 'finetune'")),
        ("OptimizerSetup.betas = (0.9, 1.5)", ("OptimizerSetup.betas", "[0, 1)")),
    ],
)
def test_run_bad_value_override(cli, tmp_path, override, names):
    spec = ROOT / "experiments" / "quickstart" / "slurp.gin"
    _refused(cli("run", spec, "--gin", "Experiment.seed = 1", "--gin", override), "run", *names)
    assert not (tmp_path / "runs").exists()  # not even the prepared data


def test_run_bad_value_in_a_spec_names_its_line(cli, tmp_path):
    spec = tmp_path / "bad.gin"
    spec.write_text(f"include '{ROOT}/experiments/quickstart/sv.gin'\n\nSpeakerVerificationTask.aam_margin = -0.1\n")
    _refused(cli("run", spec), "run", "bad.gin:3", "SpeakerVerificationTask.aam_margin", "[0, 1)")
    assert not (tmp_path / "runs").exists()


def test_run_unbalanced_gin_bracket(cli, tmp_path):
    spec = ROOT / "experiments" / "quickstart" / "slurp.gin"
    err = _refused(cli("run", spec, "--gin", "OptimizerSetup.betas = (0.9, 0.98"), "run", "--gin override #1")
    assert "never closed" in err and "slurp.gin" not in err  # the override is blamed, not the spec
    assert not (tmp_path / "runs").exists()


def test_run_missing_data(cli, tmp_path):
    err = _refused(cli("run", ROOT / "experiments" / "sv_voxceleb.gin"), "run", "VoxCeleb1", "data/voxceleb1")
    assert "veri_test2.txt" in err
    assert not (tmp_path / "runs").exists()


# --- extract --------------------------------------------------------------------------------------
def test_extract_unavailable_device(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "features"
    args = ("extract", "--model", TINY / "nest_tiny.nemo", "--input", TINY / "manifest.jsonl", "--output", out)
    _refused(cli(*args, "--device", "cuda", "--quiet"), "extract", "'cuda'", "not available")
    assert not out.exists()


def test_extract_missing_input(cli, tmp_path):
    out = tmp_path / "features"
    proc = cli("extract", "--model", TINY / "nest_tiny.nemo", "--input", tmp_path / "none.jsonl", "--output", out)
    _refused(proc, "extract", "none.jsonl")
    assert not out.exists()


# --- score ----------------------------------------------------------------------------------------
def test_score_slurp_missing_file(cli, tmp_path):
    proc = cli("score", "slurp", "--ref", SLURP / "small_gold.jsonl", "--hyp", tmp_path / "nope.jsonl")
    _refused(proc, "score", "nope.jsonl")


def test_score_sv_trial_missing_from_scores(cli, tmp_path):
    trials, scores = tmp_path / "trials.txt", tmp_path / "scores.txt"
    trials.write_text("1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n1 b/1.wav b/2.wav\n")
    scores.write_text("a/1.wav a/2.wav 0.9\na/1.wav b/1.wav 0.1\n")
    _refused(cli("score", "sv", "--trials", trials, "--scores", scores), "score", "scores.txt", "b/1.wav b/2.wav")


# --- evaluate -------------------------------------------------------------------------------------
def test_evaluate_a_folder_that_is_not_a_run(cli, tmp_path):
    folder = tmp_path / "notarun"
    folder.mkdir()
    _refused(cli("evaluate", folder), "evaluate", "notarun")
    assert sorted(folder.iterdir()) == [] and not (tmp_path / "runs").exists()


# --- leaderboard ----------------------------------------------------------------------------------
def test_leaderboard_corrupt_results(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    store.write_text(json.dumps({"experiment": "x"}) + "\n{not json\n" + json.dumps({"experiment": "y"}) + "\n")
    out = tmp_path / "boards"
    _refused(cli("leaderboard", "--results", store, "--out", out), "leaderboard", "results.jsonl")
    assert not out.exists()


# --- sweep ----------------------------------------------------------------------------------------
def test_sweep_bad_spec(cli, tmp_path):
    spec = tmp_path / "sweep.gin"
    shutil.copy(ROOT / "experiments" / "quickstart" / "sweep.gin", spec)
    spec.write_text(spec.read_text().replace("lr/FloatRange.high = 3e-3", "lr/FloatRange.high = 1e-4"))
    _refused(cli("sweep", spec, "--trials", "2"), "sweep", "sweep.gin", "OptimizerSetup.lr", "inverted range")
    assert not (tmp_path / "runs").exists()


def test_sweep_space_outside_what_the_binding_allows(cli, tmp_path):
    spec = tmp_path / "sweep.gin"
    shutil.copy(ROOT / "experiments" / "quickstart" / "sweep.gin", spec)
    spec.write_text(spec.read_text().replace("dropout/FloatRange.high = 0.3", "dropout/FloatRange.high = 1.5"))
    _refused(cli("sweep", spec, "--trials", "2"), "sweep", "sweep.gin", "SluTask.dropout", "1.5")
    assert not (tmp_path / "runs").exists()


# --- tracebacks: with -v, or for a bug -------------------------------------------------------------
@pytest.mark.parametrize("argv", [("-v", "run", "nope.gin"), ("run", "nope.gin", "-v"), ("score", "sv", "-v")])
def test_verbose_shows_the_traceback_of_a_user_error(cli, tmp_path, argv):
    extra = ("--trials", tmp_path / "t.txt", "--scores", tmp_path / "s.txt") if "score" in argv else ()
    proc = cli(*argv, *extra)
    assert proc.returncode == 2 and "Traceback" in proc.stderr and ": error:" in proc.stderr


def test_a_bug_keeps_its_traceback_and_says_so(monkeypatch, capsys, tmp_path):
    import nestbench.metrics.verification as verification
    from nestbench.cli import main

    def broken(*args, **kwargs):
        raise TypeError("an internal mistake")

    monkeypatch.setattr(verification, "score_sv_files", broken)
    assert main(["score", "sv", "--trials", str(tmp_path / "t"), "--scores", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError: an internal mistake" in err
    assert "nestbench score: internal error" in err and "report it" in err
