"""The contract every task adapter in ``tasks/`` fulfils (one file per task family).

A task turns prepared data into model inputs and targets, owns a head on top of the encoder's
features, and knows its loss, its inference, its evaluators and the field's prediction formats.
Everything generic — the encoder, layer aggregation, batching, training, checkpoints, tracking,
provenance — lives in ``nestbench`` and never needs to know which task it runs.

The shapes the five task families need, and how they fit:

* **Named evaluation sets.** A run has ``train``, one ``dev`` set that selects checkpoints, and any
  number of named test sets (``test``, ``callhome_2spk``, ``voxceleb1_o``, ``fleurs_en_de`` …).
  ``metrics.json``, the results record, W&B and the leaderboard key results by set name.
* **Examples, per stage.** ``examples(entry, stage)`` cuts a manifest entry into model inputs:
  one whole utterance (SLU), a random crop redrawn every epoch (speaker verification training),
  fixed overlapping windows of a long session (diarization, long-audio embeddings). An example's
  ``key`` says which evaluation item it belongs to (utterance, recording file, session).
* **Evaluators, one per set** (torchmetrics-style ``update``/``compute``): they key their state as
  the task needs — by recording file (SLURP), corpus-level (WER/BLEU), by session (diarization
  windows stitched into RTTM), by trial over stored embeddings (verification) — write predictions
  in the field's native format, and merge their state across DDP ranks.
* **Metrics declared with their direction**; the first is the headline that selects checkpoints on
  dev. A task may have no dev loss (verification dev is scored by EER on trials of unseen speakers).
* **The task sees the encoder** through ``EncoderView``: feature width, number of layers and the
  frame shift (80 ms for NEST), which frame-level tasks need to place labels.

Verbs, in the order a run uses them:
  ``check_data``     -> what is missing and how to get it (checked before any work)
  ``prepare_data``   -> ``DataSplits`` (manifests on disk, prepared once, reused)
  ``convention``     -> how this run's results are scored, recorded with every result
  ``setup``          -> fit what depends on training data (a tokenizer), kept in the run folder
  ``examples``       manifest entry -> model inputs for a stage (``'train'`` or ``'eval'``)
  ``make_target``    example -> training target, or ``None`` (evaluation sets need no targets)
  ``collate_targets`` targets -> batch tensors
  ``build_head``     ``EncoderView`` -> ``nn.Module``
  ``loss``           head, features [B, T, D], lengths [B], batch -> scalar
  ``infer``          head, features, lengths, examples -> one output per example (text, embedding,
                     activity); the examples say what a model may be told (a target language)
  ``evaluator``      ``EvalSet`` + its entries -> an ``Evaluator``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

Stage = Literal["train", "eval"]
RESERVED_SET_NAMES = ("train", "dev")


@dataclass(frozen=True)
class Metric:
    """A metric a task reports: ``direction`` says which way is better (checkpoint selection, sweeps)."""

    name: str
    direction: Literal["max", "min"]


@dataclass(frozen=True)
class EvalSet:
    """One named evaluation set: its manifest, and the reference in the field's native format when
    the manifest alone does not carry it (SLURP gold jsonl, a trial list, an RTTM + UEM).

    ``info`` is recorded with the set's metrics (e.g. which trial list: ``voxceleb1-o-cleaned``).
    """

    name: str
    manifest: Path
    references: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSplits:
    """Manifests per split; ``train`` may combine several (e.g. SLURP train + train_synthetic)."""

    train: tuple[Path, ...]
    dev: EvalSet
    tests: tuple[EvalSet, ...] = ()

    def __post_init__(self) -> None:
        if self.dev.name != "dev":
            raise ValueError(f"the checkpoint-selecting set must be named 'dev', not {self.dev.name!r}")
        names = [t.name for t in self.tests]
        clash = sorted({n for n in names if names.count(n) > 1 or n in RESERVED_SET_NAMES})
        if clash:
            raise ValueError(f"test set names must be unique and not 'train'/'dev': {clash}")

    @property
    def eval_sets(self) -> tuple[EvalSet, ...]:
        return (self.dev, *self.tests)

    def all_manifests(self) -> list[Path]:
        return [*self.train, *(s.manifest for s in self.eval_sets)]


@dataclass(frozen=True)
class EncoderView:
    """What a task may know of the encoder: feature width, layers, seconds per feature frame."""

    feature_dim: int
    n_layers: int
    frame_shift: float


@dataclass(frozen=True)
class Example:
    """One model input cut from a manifest entry.

    ``id`` is unique per example; ``key`` is the evaluation item it belongs to (the entry's id, or a
    session the example is a window of). ``offset``/``duration`` (seconds) are relative to the
    entry's own start; ``duration=None`` reads to the end of the entry. ``crop`` (training only)
    asks the dataset for a random window of that many seconds, redrawn every epoch from (seed,
    epoch, example), so a resumed run sees the same crops.
    """

    id: str
    key: str
    entry: dict = field(compare=False, repr=False)
    offset: float = 0.0
    duration: float | None = None
    crop: float | None = None

    @property
    def seconds(self) -> float:
        """Length of the model input (for batching): the crop, the window, or the rest of the entry."""
        rest = self.entry["duration"] - self.offset
        span = rest if self.duration is None else min(self.duration, rest)
        return min(span, self.crop) if self.crop else span


def whole(entry: dict) -> Example:
    """The default example: the whole entry, keyed by its id."""
    return Example(entry["id"], entry["id"], entry)


@runtime_checkable
class Evaluator(Protocol):
    """Scores one evaluation set: ``update`` per batch, ``compute`` at the end (fractions, not percent).

    Its state is a picklable ``state()`` that ``merge`` combines across DDP ranks, so each rank
    can score a shard of the set. ``write`` puts predictions in the field's native format at
    ``<stem>.<ext>`` (``predictions/test.jsonl``, ``predictions/test.rttm`` …) and returns the files.
    """

    def update(self, examples: Sequence[Example], outputs: Sequence[Any]) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def write(self, stem: Path) -> list[Path]: ...

    def state(self) -> Any: ...

    def merge(self, states: Sequence[Any]) -> None: ...


@runtime_checkable
class DataSource(Protocol):
    """Where a task's data comes from; bound in the spec (``Experiment.data = @SlurpData()``)."""

    def prepare(self, work_dir: Path) -> DataSplits: ...


@runtime_checkable
class Task(Protocol):
    name: str
    metrics: tuple[Metric, ...]  # the first is the headline (checkpoint selection on dev)
    dev_loss: bool  # whether dev has targets the training loss can be computed on

    def check_data(self, source: DataSource) -> list[str]: ...

    def prepare_data(self, source: DataSource, work_dir: Path) -> DataSplits: ...

    def convention(self, source: DataSource) -> dict[str, Any]: ...

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None: ...

    def examples(self, entry: dict, stage: Stage) -> list[Example]: ...

    def make_target(self, example: Example) -> Any: ...

    def collate_targets(self, targets: Sequence[Any]) -> dict[str, torch.Tensor]: ...

    def build_head(self, encoder: EncoderView) -> nn.Module: ...

    def loss(self, head: nn.Module, features: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor: ...

    def infer(
        self, head: nn.Module, features: torch.Tensor, lengths: torch.Tensor, examples: Sequence[Example]
    ) -> list[Any]: ...

    def evaluator(self, eval_set: EvalSet, entries: Sequence[dict]) -> Evaluator: ...


def headline(task: Task) -> Metric:
    return task.metrics[0]


def metric(task: Task, name: str) -> Metric:
    """The declared metric called ``name``; a clear error lists the task's metrics otherwise."""
    for m in task.metrics:
        if m.name == name:
            return m
    raise ValueError(f"task '{task.name}' reports no metric {name!r} (it reports {', '.join(metric_names(task))})")


def metric_names(task: Task) -> list[str]:
    return [m.name for m in task.metrics]


class KeyedOutputs:
    """Evaluator state shared by most tasks: every example's output, grouped by evaluation key
    (several per key when an item is cut into windows). Merging across DDP ranks is a union."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[Any]] = {}

    def update(self, examples: Sequence[Example], outputs: Sequence[Any]) -> None:
        for ex, out in zip(examples, outputs, strict=True):
            self.outputs.setdefault(ex.key, []).append((ex.id, out))

    def state(self) -> dict[str, list[Any]]:
        return self.outputs

    def merge(self, states: Sequence[dict[str, list[Any]]]) -> None:
        for state in states:
            for key, items in state.items():
                mine = self.outputs.setdefault(key, [])
                have = {i for i, _ in mine}
                mine.extend(item for item in items if item[0] not in have)

    def by_key(self) -> dict[str, list[Any]]:
        """Outputs per key in example-id order (the same whatever the batch or rank order)."""
        return {k: [out for _, out in sorted(items, key=lambda item: item[0])] for k, items in self.outputs.items()}
