"""Evaluation runs under the training precision (the recorded dev metric is the one that selected the
checkpoint) and feeds every example of a set to its evaluator, once."""

import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from nestbench.evaluation import run_evaluator
from nestbench.task import Example, KeyedOutputs


class _AutocastTask:
    """Reports, per example, whether CPU autocast to bfloat16 was on when the task ran."""

    def infer(self, head, features, lengths, examples=None):
        on = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        return [on] * len(features)


class _Probe(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.task, self.head = _AutocastTask(), None

    def features(self, batch):
        return batch["audio"][..., None] * self.w, batch["audio_lengths"]


class _Collect(KeyedOutputs):
    def compute(self):
        return {}

    def write(self, stem):
        return []


def _loader():
    examples = [Example(f"u{i}", f"u{i}", {"id": f"u{i}", "duration": 1.0}) for i in range(5)]
    return [
        {"audio": torch.ones(len(chunk), 4), "audio_lengths": torch.full((len(chunk),), 4), "examples": chunk}
        for chunk in (examples[:2], examples[2:])
    ]


def test_final_evaluation_runs_under_the_training_precision():
    bf16 = run_evaluator(_Probe(), _loader(), _Collect(), MixedPrecision("bf16-mixed", "cpu"))
    assert {k: v for k, v in bf16.by_key().items()} == {f"u{i}": [True] for i in range(5)}
    fp32 = run_evaluator(_Probe(), _loader(), _Collect(), None)
    assert all(v == [False] for v in fp32.by_key().values())


def test_keyed_outputs_merge_rank_shards_into_the_whole_set():
    ranks = [_Collect(), _Collect()]
    ex = [Example(f"s#{i}", "s", {"id": "s"}) for i in range(4)]
    ranks[0].update(ex[:2], [0, 1])
    ranks[1].update(ex[2:], [2, 3])
    merged = _Collect()
    merged.merge([r.state() for r in ranks])
    merged.merge([ranks[0].state()])  # a state seen twice adds nothing
    assert merged.by_key() == {"s": [0, 1, 2, 3]}
