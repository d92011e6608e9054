"""Diarization on the task contract: the losses, windows and stitching through the evaluator, a tiny
real run that writes RTTM and scores DER beside the one-speaker baseline, the card specs failing fast,
and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nestbench.metrics.diarization import DiarizationDataError, read_rttm
from nestbench.results import ResultsStore
from nestbench.task import EncoderView, EvalSet
from tasks.diarization import ActivityHead, DiarizationTask, SessionEvaluator, pit_loss, sort_loss

ROOT = Path(__file__).resolve().parents[2]

TINY = """
DiarMiniData.n_train_sessions = 3
DiarMiniData.n_dev_sessions = 1
DiarMiniData.n_test_sessions = 1
DiarMiniData.min_session_s = 20.0
DiarMiniData.max_session_s = 30.0
make_tiny_nest.d_model = 32
make_tiny_nest.n_layers = 2
make_tiny_nest.n_heads = 2
make_tiny_nest.subsampling_conv_channels = 16
DiarizationTask.d_model = 32
DiarizationTask.n_layers = 1
DiarizationTask.n_heads = 2
TrainerSetup.batch_size = 4
TrainerSetup.max_epochs = 2
TrainerSetup.check_val_every_n_epoch = 1
"""


def test_sort_loss_wants_arrival_order_and_pit_accepts_any_order():
    targets = torch.zeros(1, 20, 3)
    targets[0, :10, 0] = 1  # first to speak
    targets[0, 8:, 1] = 1
    valid = torch.ones(1, 20)
    right = (targets * 2 - 1) * 8.0  # confident logits in arrival order
    swapped = right[:, :, [1, 0, 2]]
    assert sort_loss(right, targets, valid) < 0.01 < sort_loss(swapped, targets, valid)
    assert pit_loss(swapped, targets, valid) == pytest.approx(pit_loss(right, targets, valid).item(), abs=1e-6)
    # padded frames do not count
    noisy = right.clone()
    noisy[0, 15:] = -noisy[0, 15:]
    assert sort_loss(noisy, targets, torch.cat([torch.ones(1, 15), torch.zeros(1, 5)], 1)) < 0.01


def test_windows_start_on_the_frame_grid_and_cover_the_session():
    task = DiarizationTask(eval_window=10.0, eval_hop=3.0, train_window=10.0, train_hop=5.0)
    entry = {"id": "s", "duration": 27.3, "turns": [[0.5, 3.0, "a"]]}
    windows = task.examples(entry, "eval")
    assert windows[0].offset == 0 and windows[-1].offset + 10.0 >= 27.3 - 0.08
    assert all(abs(w.offset / 0.08 - round(w.offset / 0.08)) < 1e-6 for w in windows)
    target, solo = task.make_target(task.examples(entry, "train")[0])
    assert target.shape == (125, 4) and target[:, 0].sum() == 38  # centres in [0.5, 3.5): frames 6..43
    assert (solo == -1).all()  # no speaker loss: no classes


def test_speaker_loss_classes_are_the_solo_frames_speakers_per_session_unless_names_are_global():
    entries = [
        {"id": "s1", "duration": 6.0, "turns": [[0.0, 2.0, "A"], [1.6, 2.4, "B"]]},
        {"id": "s2", "duration": 6.0, "turns": [[0.0, 2.0, "A"]]},
    ]
    task = DiarizationTask(train_window=6.0, train_hop=6.0, speaker_loss_weight=0.5)
    task.setup(entries, Path("."))
    assert task.speaker_classes == {"s1/A": 0, "s1/B": 1, "s2/A": 2}  # A of call 1 is not A of call 2
    _, solo = task.make_target(task.examples(entries[0], "train")[0])
    assert (solo[:20] == 0).all() and (solo[20:25] == -1).all() and (solo[25:50] == 1).all() and (solo[50:] == -1).all()
    shared = DiarizationTask(speaker_loss_weight=0.5, speaker_names_global=True)
    shared.setup(entries, Path("."))
    assert shared.speaker_classes == {"A": 0, "B": 1}


def test_speaker_loss_trains_the_frame_embeddings_through_a_real_step():
    torch.manual_seed(0)
    entries = [{"id": "s", "duration": 4.0, "turns": [[0.0, 2.0, "A"], [2.0, 2.0, "B"]]}]
    task = DiarizationTask(d_model=16, n_layers=1, n_heads=2, train_window=4.0, train_hop=4.0, speaker_loss_weight=1.0)
    task.setup(entries, Path("."))
    view = type("View", (), {"feature_dim": 8, "frame_shift": 0.08})()
    head = task.build_head(view)
    example = task.examples(entries[0], "train")[0]
    batch = task.collate_targets([task.make_target(example)])
    features = torch.randn(1, 50, 8)
    features[:, 25:] += 3.0  # B sounds different
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = task.loss(head, features, torch.tensor([50]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert head.speaker_weights.grad is not None and losses[-1] < 0.5 * losses[0]


def test_evaluator_stitches_windows_scores_and_writes_rttm(tmp_path):
    ref = tmp_path / "ref.rttm"
    ref.write_text("SPEAKER s1 1 0.000 8.000 <NA> <NA> A <NA> <NA>\nSPEAKER s1 1 8.000 8.000 <NA> <NA> B <NA> <NA>\n")
    uem = tmp_path / "ref.uem"
    uem.write_text("s1 1 0.000 16.000\n")
    task = DiarizationTask(eval_window=10.0, eval_hop=6.0, collar=0.25)
    entries = [{"id": "s1", "duration": 16.0, "_source": "m:1"}]
    ev = SessionEvaluator(EvalSet("test", tmp_path / "m.jsonl", {"rttm": ref, "uem": uem}), entries, task)
    windows = task.examples(entries[0], "eval")
    outputs = []
    for w in windows:  # a perfect model: arrival order inside each window
        n = int(round(10.0 / 0.08))
        t = w.offset + (np.arange(n) + 0.5) * 0.08
        a, b = (t < 8.0).astype(float), (t >= 8.0).astype(float)
        order = [0, 1] if a.any() else [1, 0]
        cols = [(a, b)[i] for i in order]
        profiles = np.eye(4)[order + [2, 3]]  # each slot's profile names its speaker
        outputs.append((np.stack([*cols, np.zeros(n), np.zeros(n)], 1), profiles))
    ev.update(windows[::-1], outputs[::-1])  # any order
    m = ev.compute()
    assert m["der"] < 0.02 and m["baseline_der_one_speaker"] == pytest.approx(0.5, abs=0.02)
    files = ev.write(tmp_path / "pred" / "test")
    hyp = read_rttm(files[0])
    assert len({t.speaker for t in hyp["s1"]}) == 2
    assert json.loads(files[1].read_text())["convention"]["collar_per_side"] == 0.25


def test_more_reference_speakers_than_outputs_are_counted_and_their_speech_scored_as_missed(tmp_path):
    """md-eval scores every reference speaker: one the head has no slot for is missed speech, not skipped."""
    ref = tmp_path / "ref.rttm"
    ref.write_text("".join(f"SPEAKER s1 1 {4.0 * i:.3f} 4.000 <NA> <NA> {x} <NA> <NA>\n" for i, x in enumerate("ABC")))
    task = DiarizationTask(max_speakers=2, eval_window=20.0, eval_hop=10.0, collar=0.0)
    entries = [{"id": "s1", "duration": 12.0, "_source": "m:1"}]
    ev = SessionEvaluator(EvalSet("test", tmp_path / "m.jsonl", {"rttm": ref}), entries, task)
    (window,) = task.examples(entries[0], "eval")
    t = (np.arange(int(round(12.0 / 0.08))) + 0.5) * 0.08
    activity = np.stack([(t < 4.0), (t >= 4.0) & (t < 8.0)], 1).astype(float)  # A and B perfect; no slot for C
    ev.update([window], [(activity, np.eye(2))])
    m = ev.compute()
    assert m["n_sessions_over_max_speakers"] == 1
    assert m["missed"] == pytest.approx(1 / 3, abs=0.01) and m["der"] == pytest.approx(1 / 3, abs=0.01)


def test_frame_shift_must_match_the_encoder():
    with pytest.raises(DiarizationDataError, match="frame_shift"):
        DiarizationTask().build_head(EncoderView(32, 2, 0.04))


def test_hop_longer_than_window_is_refused():
    with pytest.raises(ValueError, match="hop"):
        DiarizationTask(eval_window=10.0, eval_hop=20.0)


def test_tiny_diarization_run_writes_rttm_and_der_beside_the_baseline(nestbench, run_env, tmp_path):
    spec = tmp_path / "tiny_diar.gin"
    spec.write_text(f"include '{ROOT / 'experiments' / 'quickstart' / 'diarization.gin'}'\n{TINY}")
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tmp_path / "runs"
    (run,) = [p for p in (runs / "quickstart_diarization").iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for name, m in metrics.items():
        assert m["der"] >= 0 and 0 < m["baseline_der_one_speaker"] < 1
        assert m["der"] == pytest.approx(m["missed"] + m["false_alarm"] + m["confusion"], abs=1e-9)
        hyp = read_rttm(run / "predictions" / f"{name}.rttm")
        assert set(hyp) <= {s for s in json.loads((run / "predictions" / f"{name}.der.json").read_text())["per_file"]}
    (record,) = ResultsStore(runs / "results.jsonl").read()
    assert record["task"] == "diar" and record["convention"]["collar_per_side"] == 0.25
    assert record["convention"]["overlap_scored"] is True


@pytest.mark.parametrize("spec", ["diar_callhome.gin", "diar_dihard.gin"])
def test_card_specs_fail_fast_naming_what_to_obtain(nestbench, run_env, tmp_path, spec):
    proc = nestbench("run", str(ROOT / "experiments" / spec), "--quiet", env=run_env, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "LDC" in proc.stderr and "cannot be downloaded" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.gin"))


def test_the_convolutional_front_end_sees_neighbours_but_not_padding():
    torch.manual_seed(0)
    head = ActivityHead(8, 16, 1, 2, 4, 0.0, positional=False, conv_kernel=5).eval()
    x = torch.randn(1, 12, 8)
    padded = torch.cat([x, torch.randn(1, 6, 8) * 100], 1)  # garbage past the length
    with torch.no_grad():
        alone = head(x, torch.tensor([12]))
        batched = head(padded, torch.tensor([12]))[:, :12]
        nudged = x.clone()
        nudged[0, 6, 0] += 1.0  # one frame changes: through the conv, frames within 2 of it change, no others
        change = (head.conv(head.proj(nudged)) - head.conv(head.proj(x))).abs().amax(-1)[0]
    assert torch.allclose(alone, batched, atol=1e-5)
    assert (change[4:9] > 1e-4).all() and (change[:4] < 1e-6).all() and (change[9:] < 1e-6).all()
