"""``PretrainModule`` under the real Lightning ``Trainer`` (CPU): the NEST loss falls on synthetic
speech-like audio, dev metrics are logged, and a run stopped after 2 epochs and resumed from its
checkpoint ends with exactly the weights of an uninterrupted 4-epoch run."""

import json

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from nestbench.data import BucketBatchSampler
from nestbench.experiment import OptimizerSetup
from nestbench.pretrain import RandomBlockMasking
from nestbench.pretrain.data import UnlabelledAudio, collate_audio, noise_augmentation
from nestbench.pretrain.lit import PretrainModule

SR = 16000


@pytest.fixture
def manifest(tmp_path, sines):
    """16 utterances of 0.8-1.55 s: sums of sines with a little noise."""
    lines = []
    rng = np.random.default_rng(0)
    for i in range(16):
        seconds = 0.8 + 0.05 * i
        wave = sines(1, seconds, seed=i)[0].numpy() + 0.01 * rng.standard_normal(int(seconds * SR))
        sf.write(tmp_path / f"u{i}.wav", wave.astype(np.float32), SR)
        lines.append(json.dumps({"audio_filepath": f"u{i}.wav", "duration": seconds, "id": f"u{i}"}))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _loaders(manifest, objective, seed=0):
    data = UnlabelledAudio.for_objective(manifest, objective, max_seconds=1.2, seed=seed)
    train = DataLoader(
        data,
        batch_sampler=BucketBatchSampler(data.durations, 4, shuffle=True, seed=seed),
        collate_fn=collate_audio,
    )
    dev = DataLoader(data, batch_sampler=BucketBatchSampler(data.durations, 8, shuffle=False), collate_fn=collate_audio)
    return train, dev


def _trainer(max_epochs, callbacks=(), root=None):
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        gradient_clip_val=1.0,
        default_root_dir=root,
    )


class _Record(Callback):
    def __init__(self):
        self.losses, self.dev = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append((trainer.current_epoch, float(outputs["loss"])))

    def on_validation_epoch_end(self, trainer, module):
        m = trainer.callback_metrics
        self.dev.append((float(m["dev/loss"]), float(m["dev/masked_acc"])))


def _module(tiny_objective, augment=True, lr=3e-3):
    # mask_prob 0.05 (NEST: 0.01) masks ~2 blocks a second: enough masked steps for a steady loss on 1 s clips
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the mask embedding is drawn at construction: every run starts alike
        masking = RandomBlockMasking(feat_in=80, mask_prob=0.05)
    obj = tiny_objective(seed=0, num_classes=32, masking=masking)
    if augment:
        obj.augmentation = noise_augmentation(None, prob=0.5)  # speech mixing only: no noise set here
    return PretrainModule(obj, OptimizerSetup(lr=lr, warmup_steps=2, weight_decay=0.0), seed=1)


def test_pretraining_loss_falls(manifest, tiny_objective, tmp_path):
    module = _module(tiny_objective)
    train, dev = _loaders(manifest, module.objective)
    record = _Record()
    trainer = _trainer(8, [record], root=tmp_path)
    trainer.fit(module, train, dev)
    first = np.mean([loss for e, loss in record.losses if e == 0])
    last = np.mean([loss for e, loss in record.losses if e >= 6])
    print(
        f"train/loss epoch 0 {first:.3f} -> epochs 6-7 {last:.3f}; dev (loss, acc) {record.dev[0]} -> {record.dev[-1]}"
    )
    assert len(record.losses) == 8 * 4
    assert train.batch_sampler.epoch == 7  # Lightning reached the sampler's set_epoch every epoch
    assert last < first - 0.15
    assert record.dev[-1][0] < record.dev[0][0]
    assert {"train/loss", "train/masked_acc", "dev/loss", "dev/masked_acc"} <= set(trainer.callback_metrics)


class _StopAfter(Callback):
    """Ends fit after ``epochs`` epochs, as a job killed at an epoch boundary would (its checkpoint written)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_resume_from_checkpoint_matches_uninterrupted(manifest, tiny_objective, tmp_path):
    full = _module(tiny_objective)
    loaders = _loaders(manifest, full.objective)
    _trainer(4, root=tmp_path / "full").fit(full, *loaders)
    assert loaders[0].batch_sampler.epoch == 3

    first = _module(tiny_objective)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)
    _trainer(4, [ckpt, _StopAfter(2)], root=tmp_path / "a").fit(first, *_loaders(manifest, first.objective))
    assert first.current_epoch == 2 and first.global_step == 8
    halfway = {k: v.clone() for k, v in first.state_dict().items()}

    resumed = _module(tiny_objective)
    trainer = _trainer(4, root=tmp_path / "b")
    loaders = _loaders(manifest, resumed.objective)
    trainer.fit(resumed, *loaders, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert resumed.global_step == 16 and loaders[0].batch_sampler.epoch == 3
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different}"
    assert any(not torch.equal(halfway[k], b[k]) for k in b)  # and it did train on after the checkpoint


def test_validation_masks_alike_every_time_and_never_augments(manifest, tiny_objective):
    module = _module(tiny_objective)
    augmentation = module.objective.augmentation
    calls = []
    module.objective.augmentation = lambda *a: calls.append(1) or augmentation(*a)
    _, dev = _loaders(manifest, module.objective)
    trainer = _trainer(1)
    first = trainer.validate(module, dev, verbose=False)[0]
    second = trainer.validate(module, dev, verbose=False)[0]
    assert first == second and set(first) == {"dev/loss", "dev/masked_acc"}
    assert not calls and module.objective.augmentation is not None  # switched off for dev only, then restored
