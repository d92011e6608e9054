"""``nestbench pretrain`` through the real CLI on a seconds-long version of the quickstart spec: the run
folder, the exported ``.nemo`` (read back by nestbench's loaders with identical outputs), the record,
continued pretraining that keeps the checkpoint's quantizer, resuming a killed run to the same weights,
and the bad inputs the issue names (missing noise, another architecture, a spec that masks nothing)."""

import json
import signal
import subprocess
import time

import pytest
import torch

from nestbench.checkpoint import load_nemo
from nestbench.encoder import NestEncoder
from nestbench.pretrain import load_nest_objective
from nestbench.results import ResultsStore

pytestmark = pytest.mark.slow

SPEC = "experiments/quickstart/pretrain.gin"
TINY = """
SpeechMiniAudio.n_train = 24
SpeechMiniAudio.n_dev = 4
SpeechMiniAudio.n_train_speakers = 4
SpeechMiniAudio.n_dev_speakers = 1
SpeechMiniAudio.noise_clips = 6
make_tiny_nest.d_model = 32
make_tiny_nest.n_layers = 1
make_tiny_nest.n_heads = 2
make_tiny_nest.subsampling_conv_channels = 8
NestObjectiveSetup.num_classes = 64
NestObjectiveSetup.mask_prob = 0.05
OptimizerSetup.warmup_steps = 2
TrainerSetup.batch_size = 8
TrainerSetup.max_epochs = 2
TrainerSetup.cpu_threads = 1
TrainerSetup.log_every_n_steps = 1
"""


@pytest.fixture
def pretrain(nestbench, run_env, tmp_path):
    """``pretrain(*gin, extra=(...))``: the tiny quickstart pretraining, run to the end in ``tmp_path``."""
    root = __import__("pathlib").Path(__file__).resolve().parents[2]

    def run(*bindings: str, args=(), spec=SPEC):
        gin = [a for b in (TINY, *bindings) for a in ("--gin", b)]
        return nestbench("pretrain", root / spec, *gin, "--quiet", *args, env=run_env, cwd=tmp_path, timeout=600)

    return run


def _only_run(tmp_path):
    (record,) = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    return record, tmp_path / "runs" / record["run_dir"]


def test_pretraining_writes_a_run_folder_a_record_and_a_nemo_that_reads_back(pretrain, tmp_path):
    proc = pretrain(args=("--wandb", "offline"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record, run_dir = _only_run(tmp_path)
    for name in ("config.gin", "run.json", "run.log", "metrics.json", "curves.png", "nest.nemo",
                 "checkpoints/last.ckpt", "checkpoints/best.ckpt", "csv/metrics.csv"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1

    # the record: provenance, what it trained on, and the export's round-trip check
    assert record["task"] == "pretrain" and record["experiment"] == "quickstart_pretrain"
    assert record["epochs"] == 2 and record["steps"] == 2 * 3  # 24 utterances in batches of 8
    assert record["data"]["train_utterances"] == 24 and record["data"]["dev_utterances"] == 4
    assert record["export"]["encoder"]["n_layers"] == 1 and record["export"]["encoder"]["num_classes"] == 64
    assert record["metrics"]["export"] == {"encoder_max_abs_diff": 0.0, "targets_identical": True, "utterances": 4}
    assert set(record["metrics"]["dev"]) >= {"loss", "masked_acc"}
    assert record["config_hash"] and record["data_fingerprint"] and record["git"]["commit"]
    assert not str(record["run_dir"]).startswith("/")  # records travel

    # the .nemo is a NEST SSL checkpoint in NeMo's layout, and nestbench's two loaders read it
    ckpt = load_nemo(run_dir / "nest.nemo")
    assert ckpt.config["target"].endswith("EncDecDenoiseMaskedTokenPredModel")
    assert {"quantizer.proj.weight", "decoder.decoder_layers.0.weight"} <= set(ckpt.state_dict)
    objective = load_nest_objective(run_dir / "nest.nemo", augment=False)
    encoder = NestEncoder.from_pretrained(run_dir / "nest.nemo")
    audio = torch.randn(2, 16000) * 0.1
    a = objective.nest(audio).layers[-1]
    b = encoder(audio).layers[-1]
    assert torch.equal(a, b)


def test_continued_pretraining_keeps_the_checkpoints_quantizer(pretrain, tmp_path):
    assert pretrain().returncode == 0
    _, first = _only_run(tmp_path)
    source = load_nemo(first / "nest.nemo").state_dict
    (tmp_path / "runs" / "results.jsonl").rename(tmp_path / "first.jsonl")

    proc = pretrain("PretrainExperiment.init = 'continue'", f"PretrainExperiment.checkpoint = '{first / 'nest.nemo'}'")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, second = _only_run(tmp_path)
    assert record["checkpoint"]["init"] == "continue"
    continued = load_nemo(second / "nest.nemo").state_dict
    for key in ("quantizer.proj.weight", "quantizer.codebooks", "mask_processor.mask_embedding"):
        assert torch.equal(continued[key], source[key]), key  # same targets, same (frozen) mask vector
    assert not torch.equal(continued["decoder.decoder_layers.0.weight"], source["decoder.decoder_layers.0.weight"])

    # targets cannot change when continuing: another class count is refused, naming the binding
    refused = pretrain(
        "PretrainExperiment.init = 'continue'", f"PretrainExperiment.checkpoint = '{first / 'nest.nemo'}'",
        "NestObjectiveSetup.num_classes = 128",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "NestObjectiveSetup.num_classes = 128 (checkpoint: 64)" in refused.stderr


def test_continuing_from_another_architecture_lists_the_keys(pretrain, tmp_path):
    # a plain encoder checkpoint (no quantizer or decoder): not a NEST SSL model
    from nestbench.encoder.tiny import make_tiny_nest

    proc = pretrain("PretrainExperiment.init = 'continue'")  # the tiny encoder itself
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "is not a NEST checkpoint of this architecture" in proc.stderr
    assert "missing: ['decoder.decoder_layers.0.bias', 'decoder.decoder_layers.0.weight'" in proc.stderr
    assert not list((tmp_path / "runs").glob("*.jsonl"))  # nothing recorded
    assert make_tiny_nest  # the checkpoint the spec names


def test_a_missing_noise_manifest_stops_the_run_unless_the_spec_allows_it(pretrain, tmp_path):
    audio = "SpeechMiniAudio.noise_clips = 0"  # the corpus without its noise clips: no noise manifest
    proc = pretrain(audio)
    assert proc.returncode == 2
    assert "no noise manifest given, but the augmentation requires one" in proc.stderr

    allowed = pretrain(audio, "NestObjectiveSetup.noise_required = False")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "noise_ratio 0.5 -> 0" in allowed.stderr  # said, not silent: only other speech is mixed in


def test_a_spec_that_masks_nothing_is_refused_before_any_work(pretrain, tmp_path):
    proc = pretrain("NestObjectiveSetup.mask_prob = 0.0")
    assert proc.returncode == 2
    assert "mask nothing" in proc.stderr and "NestObjectiveSetup.mask_prob" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_killed_pretraining_resumes_to_the_weights_of_an_uninterrupted_one(
    pretrain, nestbench_cmd, run_env, tmp_path
):
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    assert pretrain("TrainerSetup.max_epochs = 3").returncode == 0
    _, whole = _only_run(tmp_path)
    (tmp_path / "runs" / "results.jsonl").rename(tmp_path / "whole.jsonl")

    gin = [a for b in (TINY, "TrainerSetup.max_epochs = 3") for a in ("--gin", b)]
    argv = nestbench_cmd("pretrain", root / SPEC, *gin, "--quiet", "--wandb", "disabled")
    proc = subprocess.Popen(argv, env=run_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, runs = time.time() + 300, tmp_path / "runs"
    last = None
    while time.time() < deadline and proc.poll() is None:
        found = [p for p in runs.glob("quickstart_pretrain/*/checkpoints/last.ckpt") if whole not in p.parents]
        if found:
            last = found[0]
            break
        time.sleep(0.2)
    assert last is not None, "no epoch checkpoint appeared"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = last.parent.parent
    assert not (run_dir / "metrics.json").exists()

    resumed = subprocess.run([*argv, "--resume"], env=run_env, cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_nemo(whole / "nest.nemo").state_dict, load_nemo(run_dir / "nest.nemo").state_dict
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    # the curve too: rows before the kill kept, rows after the checkpoint replayed once (curves.png draws it)
    assert (run_dir / "csv" / "metrics.csv").read_text() == (whole / "csv" / "metrics.csv").read_text()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["epochs"] == 3
