"""Batch order: a pure function of (seed, epoch), split evenly and disjointly between DDP ranks."""

from nestbench.data import BucketBatchSampler

DURATIONS = [1.0 + (i * 7 % 13) / 3 for i in range(45)]


def _batches(**kw) -> list[list[int]]:
    return list(BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1, **kw))


def test_same_seed_and_epoch_same_batches_and_epochs_differ():
    a, b = (
        BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1),
        BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1),
    )
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert sorted(i for batch in a for i in batch) == list(range(45))  # every utterance once per epoch


def test_ranks_take_disjoint_equal_shares():
    one = _batches()
    ranks = [_batches(rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(one) // 2  # equal step counts, or DDP would hang
    assert [len(r) for r in ranks] == [
        len(BucketBatchSampler(DURATIONS, 4, shuffle=True, rank=r, world_size=2)) for r in (0, 1)
    ]
    flat = [tuple(b) for r in ranks for b in r]
    assert len(set(flat)) == len(flat) and set(flat) <= {tuple(b) for b in one}


def test_unset_rank_reads_the_process_group_and_defaults_to_one_process():
    lazy = BucketBatchSampler(DURATIONS, 4, shuffle=True, seed=1, rank=None, world_size=None)
    assert (lazy.rank, lazy.world_size) == (0, 1) and list(lazy) == _batches() and len(lazy) == len(_batches())
