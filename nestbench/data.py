"""Manifest entries -> padded audio batches with task targets, in a resumable deterministic order.

Batch shape legend (B utterances, S samples, L cached layers, T frames, D model width):
  audio batches (``AudioTargetDataset`` + ``make_collate``): ``audio`` [B, S] float32 at the encoder's
  rate, ``audio_lengths`` [B] samples;
  cached-feature batches (``CachedFeatureDataset`` + ``make_feature_collate``, a frozen encoder's layers
  read from the feature cache): ``features`` [B, L, T, D] float32, zero past ``feature_lengths`` [B] frames;
  both: ``ids`` list[str], plus whatever ``task.collate_targets`` returns (e.g. ``tokens`` [B, U]).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .audio import AudioError, AudioReader
from .extract import Utterance
from .feature_cache import cache_utterance
from .manifest import read_manifest
from .task import DataSplits, Task


def read_entries(manifest: Path) -> list[dict]:
    """Manifest lines as dicts with ``audio_filepath`` resolved, ``id`` filled and ``duration`` known.

    Every audio header is read up front, so a missing, corrupt or empty file stops the run before
    training starts (with manifest:line and path), not hours into an epoch.
    """
    reader = AudioReader()
    entries, problems = [], []
    for e in read_manifest(manifest):
        item = dict(e.fields)
        item["audio_filepath"] = str(e.audio_filepath)
        item["id"] = e.utt_id or e.audio_filepath.stem
        item["offset"] = e.offset
        item["_source"] = f"{manifest}:{e.line}"
        try:
            seconds = reader.duration(e.audio_filepath)
            if seconds <= 0:
                raise AudioError(f"{e.audio_filepath}: audio is empty (0 samples)")
        except AudioError as err:
            problems.append(f"{manifest}:{e.line}: {err}")
            continue
        item["duration"] = e.duration if e.duration is not None else seconds
        entries.append(item)
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise AudioError(f"{len(problems)} unusable audio file(s):\n  " + "\n  ".join(problems[:10]) + more)
    return entries


class AudioTargetDataset(Dataset):
    def __init__(self, entries: Sequence[dict], task: Task, sample_rate: int, min_samples: int):
        self.entries = list(entries)
        self.task = task
        self.reader = AudioReader(sample_rate)
        self.min_samples = min_samples
        self.targets = [task.make_target(e) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        audio = self.reader.read(*audio_span(e))
        if len(audio) < self.min_samples:
            raise AudioError(
                f"{e['audio_filepath']} ({e['_source']}): {len(audio)} samples is shorter than one "
                f"analysis frame ({self.min_samples})"
            )
        return {"audio": torch.from_numpy(audio), "target": self.targets[i], "id": e["id"]}


def audio_span(entry: dict) -> tuple[str, float, float | None]:
    """(path, offset, duration) of the audio an entry stands for: a segment of a longer recording
    when it has an offset, else the whole file (``None``). The feature cache keys on the same span."""
    if entry.get("offset", 0.0) > 0:
        return entry["audio_filepath"], entry["offset"], entry.get("duration")
    return entry["audio_filepath"], 0.0, None


def cache_utterances(entries: Sequence[dict]) -> list[tuple[float, Utterance]]:
    """(seconds, utterance named by its audio fingerprint) per entry, in order, for the feature cache."""
    return [(e["duration"], cache_utterance(*audio_span(e))) for e in entries]


class CachedFeatureDataset(Dataset):
    """A frozen encoder's layers read from the feature cache instead of audio: the encoder never runs.

    ``files[i]`` holds entry ``i``'s float32 [L, T, D] (``FeatureCache.file``); reading it is all
    the work an item costs, so a trial after the first trains at the head's speed.
    """

    def __init__(self, entries: Sequence[dict], task: Task, files: Sequence[Path]):
        if len(files) != len(entries):
            raise ValueError(f"{len(files)} feature files for {len(entries)} entries")
        self.entries, self.files = list(entries), list(files)
        self.targets = [task.make_target(e) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        try:
            array = np.load(self.files[i])
        except (OSError, ValueError) as err:
            raise OSError(
                f"{self.files[i]} (features of {self.entries[i]['audio_filepath']}): unreadable ({err}); "
                "delete it and rerun to recompute it"
            ) from err
        return {"features": torch.from_numpy(array), "target": self.targets[i], "id": self.entries[i]["id"]}


def make_feature_collate(task: Task):
    def collate(items: list[dict]) -> dict:
        lengths = torch.tensor([it["features"].shape[1] for it in items])
        n_layers, _, dim = items[0]["features"].shape
        features = torch.zeros(len(items), n_layers, int(lengths.max()), dim)
        for i, it in enumerate(items):
            features[i, :, : it["features"].shape[1]] = it["features"]
        batch = {"features": features, "feature_lengths": lengths, "ids": [it["id"] for it in items]}
        batch.update(task.collate_targets([it["target"] for it in items]))
        return batch

    return collate


def make_collate(task: Task):
    def collate(items: list[dict]) -> dict:
        lengths = torch.tensor([len(it["audio"]) for it in items])
        audio = torch.zeros(len(items), int(lengths.max()))
        for i, it in enumerate(items):
            audio[i, : len(it["audio"])] = it["audio"]
        batch = {"audio": audio, "audio_lengths": lengths, "ids": [it["id"] for it in items]}
        batch.update(task.collate_targets([it["target"] for it in items]))
        return batch

    return collate


class BucketBatchSampler(Sampler[list[int]]):
    """Similar-length batches in an order that depends only on (seed, epoch).

    Shuffles, groups into pools of ``pool`` batches, sorts each pool by duration, cuts batches and
    shuffles their order. Because the order is a pure function of the epoch, a run resumed from an
    epoch-end checkpoint sees exactly the batches an uninterrupted run would. Under DDP each rank
    takes every ``world_size``-th batch; ``rank``/``world_size`` left ``None`` are read from the process
    group when iterated, because Lightning starts it only inside ``fit``, after the loaders exist.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        pool: int = 50,
        rank: int | None = 0,
        world_size: int | None = 1,
    ):
        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch_size, self.shuffle, self.seed, self.pool = batch_size, shuffle, seed, pool
        self._rank, self._world_size = rank, world_size
        self.epoch = 0

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else _process_group()[0]

    @property
    def world_size(self) -> int:
        return self._world_size if self._world_size is not None else _process_group()[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        n = len(self.durations)
        if not self.shuffle:
            order = np.argsort(-self.durations, kind="stable")
            return [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(n)
        chunk = self.batch_size * self.pool
        batches = []
        for start in range(0, n, chunk):
            idx = perm[start : start + chunk]
            idx = idx[np.argsort(-self.durations[idx], kind="stable")]
            batches += [idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        world = self.world_size
        usable = len(batches) - len(batches) % world  # every rank takes as many steps (DDP would hang)
        yield from batches[self.rank : usable : world]

    def __len__(self) -> int:
        return math.ceil(len(self.durations) / self.batch_size) // self.world_size


def _process_group() -> tuple[int, int]:
    """(rank, world size) of the running ``torch.distributed`` group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def data_fingerprint(manifests: Sequence[Path]) -> str:
    """sha256 over manifest bytes and each referenced audio file's name and size (cheap, catches edits)."""
    h = hashlib.sha256()
    for m in manifests:
        m = Path(m)
        h.update(m.name.encode())
        h.update(hashlib.sha256(m.read_bytes()).digest())
        for e in read_manifest(m, check_audio=False):
            audio = e.audio_filepath
            h.update(f"{audio.name}:{audio.stat().st_size if audio.exists() else -1}".encode())
    return h.hexdigest()


class ManifestData:
    """Any task's data as ready-made manifests (NeMo JSONL or lhotse CutSet) per split."""

    eval_recordings = "as listed"

    def __init__(self, train: Sequence[str], dev: str, test: str, gold: dict[str, str] | None = None):
        self.train = tuple(Path(p) for p in ([train] if isinstance(train, str) else train))
        self.dev, self.test = Path(dev), Path(test)
        self.gold = {k: Path(v) for k, v in (gold or {}).items()}

    def missing(self) -> list[str]:
        return [f"manifest {p} does not exist" for p in (*self.train, self.dev, self.test) if not p.is_file()]

    def prepare(self, work_dir: Path) -> DataSplits:
        return DataSplits(train=self.train, dev=self.dev, test=self.test, gold=self.gold)
