"""Speaker verification on the task contract: a tiny real run (frozen cached encoder, AAM-softmax, trial
scoring, DET plot), `nestbench evaluate` on a newly bound test set, `nestbench score sv`, and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nestbench.metrics.verification import VerificationDataError
from nestbench.results import ResultsStore
from nestbench.task import EvalSet
from tasks.speaker_verification import SpeakerVerificationTask, TrialEvaluator, adaptive_snorm, balanced_trials

ROOT = Path(__file__).resolve().parents[2]

TINY = """
SvMiniData.n_train_speakers = 6
SvMiniData.n_dev_speakers = 3
SvMiniData.n_test_speakers = 3
SvMiniData.utterances_per_speaker = 3
SvMiniData.n_dev_trials = 12
SvMiniData.n_test_trials = 12
SvMiniData.cohort_per_speaker = 1
make_tiny_nest.d_model = 32
make_tiny_nest.n_layers = 2
make_tiny_nest.n_heads = 2
make_tiny_nest.subsampling_conv_channels = 16
SpeakerVerificationTask.channels = 16
SpeakerVerificationTask.emb_dim = 16
SpeakerVerificationTask.score_norm = 'asnorm'
SpeakerVerificationTask.cohort_top_k = 3
TrainerSetup.batch_size = 8
TrainerSetup.max_epochs = 2
"""


def _only_run(runs: Path, name: str) -> Path:
    (run,) = [p for p in (runs / name).iterdir() if p.is_dir()]
    return run


def test_tiny_sv_run_then_evaluate_on_a_new_test_set(nestbench, run_env, tmp_path):
    spec = tmp_path / "tiny_sv.gin"
    spec.write_text(f"include '{ROOT / 'experiments' / 'quickstart' / 'sv.gin'}'\n{TINY}")
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tmp_path / "runs"
    run = _only_run(runs, "quickstart_sv")
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for name in ("dev", "test"):
        m = metrics[name]
        assert 0.0 <= m["eer"] <= 1.0 and 0.0 <= m["baseline_eer"] <= 1.0
        assert m["n_target"] > 0 and m["n_nontarget"] > 0
        assert (run / "predictions" / f"{name}.det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        lines = (run / "predictions" / f"{name}.scores.txt").read_text().splitlines()
        assert len(lines) == m["n_target"] + m["n_nontarget"]
    (record,) = ResultsStore(runs / "results.jsonl").read()
    assert record["task"] == "sv" and record["sets"]["test"]["trial_list"] == "sv-mini-test"
    assert record["convention"]["score_norm"].startswith("adaptive s-norm")
    assert not Path(record["run_dir"]).is_absolute() and str(tmp_path) not in json.dumps(record)

    # a new named test set bound at evaluation time: the dev speakers again, under another name
    corpus = next((runs / "_data").glob("sv_mini-*"))
    again = {"manifest": str(corpus / "dev.jsonl"), "trials": str(corpus / "dev_trials.txt")}
    extra = f"Experiment.extra_tests = {{'again': {again!r}}}"
    proc = nestbench("evaluate", str(run), "--quiet", "--gin", extra, env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = ResultsStore(runs / "results.jsonl").read()
    assert len(records) == 2 and records[1]["evaluation_of"] == run.name
    assert set(records[1]["metrics"]) == {"again"}
    # the same speakers and trials as dev (without the cohort), scored by the same checkpoint
    assert records[1]["metrics"]["again"]["baseline_eer"] == pytest.approx(metrics["dev"]["baseline_eer"])
    (evaluation,) = (run / "evaluations").iterdir()
    assert (evaluation / "predictions" / "again.det.png").exists()


def _trial_files(tmp_path, scores: dict[tuple[str, str], float] | None = None):
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a b\n0 a c\n1 c d\n0 b d\n")
    table = scores if scores is not None else {("a", "b"): 0.9, ("a", "c"): 0.1, ("c", "d"): 0.8, ("b", "d"): 0.3}
    hyp = tmp_path / "scores.txt"
    hyp.write_text("".join(f"{e} {t} {s}\n" for (e, t), s in table.items()))
    return trials, hyp


def test_score_sv_cli(nestbench, run_env, tmp_path):
    trials, hyp = _trial_files(tmp_path)
    proc = nestbench("score", "sv", "--trials", trials, "--scores", hyp, env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["eer"] == 0.0 and out["n_trials"] == 4


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({("a", "b"): 0.9, ("a", "c"): 0.1, ("c", "d"): 0.8}, "b d"),
        ({("a", "b"): 0.9, ("a", "c"): float("nan"), ("c", "d"): 0.8, ("b", "d"): 0.3}, "a c"),
    ],
)
def test_score_sv_cli_names_missing_and_nan_trials(nestbench, run_env, tmp_path, scores, message):
    trials, hyp = _trial_files(tmp_path, scores)
    proc = nestbench("score", "sv", "--trials", trials, "--scores", hyp, env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def _entries(tmp_path, ids, speakers=None):
    out = []
    for i, utt in enumerate(ids):
        path = tmp_path / f"{utt}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(8000).astype(np.float32) * 0.1, 16000)
        out.append({"id": utt, "audio_filepath": str(path), "duration": 0.5, "speaker": (speakers or ids)[i],
                    "_source": f"m.jsonl:{i + 1}"})  # fmt: skip
    return out


def test_trial_list_naming_unknown_utterances_lists_them(tmp_path):
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a b\n0 a ghost1\n0 ghost2 b\n")
    entries = _entries(tmp_path, ["a", "b"])
    with pytest.raises(VerificationDataError, match=r"2 utterance\(s\).*ghost1, ghost2"):
        TrialEvaluator(EvalSet("test", tmp_path / "m.jsonl", {"trials": trials}), entries, "none", 10)


def test_single_training_speaker_is_refused(tmp_path):
    task = SpeakerVerificationTask()
    with pytest.raises(VerificationDataError, match="at least two training speakers"):
        task.setup(_entries(tmp_path, ["u1", "u2"], ["spk", "spk"]), tmp_path)


def test_long_utterances_are_windowed_and_keyed_by_utterance():
    task = SpeakerVerificationTask(eval_window=4.0, train_crop=2.0)
    entry = {"id": "long", "duration": 10.0}
    windows = task.examples(entry, "eval")
    assert [(w.offset, w.duration) for w in windows] == [(0.0, 4.0), (2.0, 4.0), (4.0, 4.0), (6.0, 4.0)]
    assert {w.key for w in windows} == {"long"} and len({w.id for w in windows}) == 4
    (crop,) = task.examples(entry, "train")
    assert crop.crop == 2.0 and crop.seconds == 2.0


def test_adaptive_snorm_is_symmetric_and_shift_invariant():
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    e, t, cohort = (
        unit(rng.standard_normal((5, 8))),
        unit(rng.standard_normal((5, 8))),
        unit(rng.standard_normal((20, 8))),
    )
    raw = (e * t).sum(1)
    np.testing.assert_allclose(adaptive_snorm(raw, e, t, cohort, 5), adaptive_snorm(raw, t, e, cohort, 5))
    assert np.all(np.diff(adaptive_snorm(raw + 0.0, e, t, cohort, 20)[np.argsort(raw)]) != 0)


def test_balanced_trials_have_no_self_trials_or_repeats():
    entries = [{"id": f"s{s}-{u}", "speaker": f"s{s}"} for s in range(4) for u in range(3)]
    trials = balanced_trials(entries, 20, seed=1)
    assert len(trials) == 20 and len(set(trials)) == 20
    assert sum(label for label, _, _ in trials) == 10
    assert all(a != b for _, a, b in trials)
    assert all((a.split("-")[0] == b.split("-")[0]) == bool(label) for label, a, b in trials)


def test_voxceleb_spec_fails_fast_naming_what_to_download(nestbench, run_env, tmp_path):
    proc = nestbench("run", ROOT / "experiments" / "sv_voxceleb.gin", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "VoxCeleb1 audio not found" in proc.stderr and "veri_test2.txt" in proc.stderr
    assert "ssl_en_nest_large_v1.0" in proc.stderr  # the checkpoint, and where to put it
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.gin"))
