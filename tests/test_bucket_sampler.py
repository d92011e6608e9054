"""Batch order: a pure function of (seed, epoch), split evenly and disjointly between DDP ranks,
capped by count and by padded seconds, and really advanced by Lightning from epoch to epoch."""

import logging

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nestbench.data import BucketBatchSampler

DURATIONS = [1.0 + (i * 7 % 13) / 3 for i in range(45)]


def _indices(batches) -> list[list[int]]:
    return [[i for i, _ in batch] for batch in batches]


def _batches(**kw) -> list[list[int]]:
    return _indices(BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1, **kw))


def test_same_seed_and_epoch_same_batches_and_epochs_differ():
    a, b = (
        BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1),
        BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1),
    )
    assert list(a) == list(b)
    b.set_epoch(1)
    assert _indices(a) != _indices(b)
    assert all(epoch == 1 for batch in b for _, epoch in batch)  # items carry their epoch (random crops)
    assert sorted(i for batch in _indices(a) for i in batch) == list(range(45))  # every utterance once per epoch


def test_ranks_take_disjoint_equal_shares():
    shares = [_batches(rank=r, world_size=2) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1])
    assert not {i for b in shares[0] for i in b} & {i for b in shares[1] for i in b}
    assert [len(BucketBatchSampler(DURATIONS, 4, shuffle=True, rank=r, world_size=2)) for r in (0, 1)] == [
        len(shares[0])
    ] * 2


def test_lazy_rank_outside_ddp_is_single_process():
    lazy = BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1, rank=None, world_size=None)
    assert _indices(lazy) == _batches()


def test_duration_cap_bounds_padded_seconds_and_long_items_run_alone(caplog):
    durations = [*DURATIONS, 30.0]
    with caplog.at_level(logging.WARNING):
        sampler = BucketBatchSampler(durations, None, shuffle=True, seed=3, max_batch_duration=12.0)
    assert "longer than TrainerSetup.max_batch_duration" in caplog.text
    batches = _indices(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(durations)))
    for b in batches:
        padded = max(durations[i] for i in b) * len(b)
        assert padded <= 12.0 or b == [len(durations) - 1]
    assert [len(durations) - 1] in batches
    assert len(sampler) == len(batches)
    # a count cap still applies beside the duration cap
    both = _indices(BucketBatchSampler(durations, 2, shuffle=False, max_batch_duration=100.0))
    assert max(len(b) for b in both) == 2


def test_evaluation_shards_keep_every_item():
    shards = [_indices(BucketBatchSampler(DURATIONS, 4, shuffle=False, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(i for s in shards for b in s for i in b) == list(range(45))


class _Items(Dataset):
    def __len__(self):
        return len(DURATIONS)

    def __getitem__(self, item):
        index, _epoch = item
        return torch.tensor([float(index)])


class _Recorder(pl.LightningModule):
    """Records the order in which each epoch's items arrive."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(int(v) for v in batch.flatten())
        return (self.w * batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_real_trainer_advances_the_epoch(tmp_path):
    """Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler`` only:
    a real ``Trainer`` must still see a new batch order each epoch, the one (seed, epoch) gives."""
    sampler = BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=5)
    loader = DataLoader(_Items(), batch_sampler=sampler)
    model = _Recorder()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, loader)
    expected = []
    for epoch in (0, 1):
        reference = BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=5)
        reference.set_epoch(epoch)
        expected.append([i for batch in _indices(reference) for i in batch])
    assert model.seen[0] == expected[0]
    assert model.seen[1] == expected[1]
    assert model.seen[0] != model.seen[1]
