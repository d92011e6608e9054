"""The contract every task adapter in ``tasks/`` fulfils (one file per task family).

A task turns prepared data into targets, owns a head on top of the encoder's features, and knows
its loss, its decoding, its metric and its native prediction format. Everything generic — the
encoder, layer aggregation, batching, training, checkpoints, tracking, provenance — lives in
``nestbench`` and never needs to know which task it runs.

Verbs, in the order a run uses them:
  ``check_data``     -> what is missing and how to get it (checked before any work)
  ``prepare_data``   -> ``DataSplits`` (manifests on disk, prepared once, reused)
  ``setup``          fit what depends on training data (a tokenizer), saved in the run folder
  ``make_target``    manifest entry -> training target (tensor(s)); ``collate_targets`` batches them
  ``build_head``     encoder feature size -> ``nn.Module``
  ``loss``           head, features [B, T, D], lengths [B], batch targets -> scalar
  ``decode``         head, features, lengths -> list of predictions (one per utterance)
  ``score``          predictions + references -> ``{metric: value}`` (fractions, not percent)
  ``write_predictions`` predictions -> the field's native file format
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class DataSplits:
    """Manifests per split; ``train`` may combine several (e.g. SLURP train + train_synthetic)."""

    train: tuple[Path, ...]
    dev: Path
    test: Path
    gold: dict[str, Path] = field(default_factory=dict)  # split -> reference file in the task's native format

    def all_manifests(self) -> list[Path]:
        return [*self.train, self.dev, self.test]


@runtime_checkable
class DataSource(Protocol):
    """Where a task's data comes from; bound in the spec (``Experiment.data = @SlurpData()``)."""

    def prepare(self, work_dir: Path) -> DataSplits: ...


@runtime_checkable
class Task(Protocol):
    name: str
    metrics: tuple[str, ...]  # keys ``score`` returns, the first is the headline
    convention: dict[str, Any]  # how results are scored (e.g. SLURP official, collar...), recorded with each result

    def check_data(self, source: DataSource) -> list[str]: ...

    def prepare_data(self, source: DataSource, work_dir: Path) -> DataSplits: ...

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None: ...

    def make_target(self, entry: dict) -> Any: ...

    def collate_targets(self, targets: Sequence[Any]) -> dict[str, torch.Tensor]: ...

    def build_head(self, feature_dim: int) -> nn.Module: ...

    def loss(self, head: nn.Module, features: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor: ...

    def decode(self, head: nn.Module, features: torch.Tensor, lengths: torch.Tensor) -> list[Any]: ...

    def score(self, predictions: dict[str, Any], references: dict[str, Any]) -> dict[str, float]: ...

    def reference(self, entry: dict) -> Any: ...

    def write_predictions(self, predictions: dict[str, Any], path: Path) -> Path: ...

    def direction(self, metric: str) -> str: ...
