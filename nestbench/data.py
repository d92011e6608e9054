"""Manifest entries -> task examples -> padded batches, in a resumable deterministic order.

Batch shape legend (B examples, S samples, L cached layers, T frames, D model width):
  audio batches (``ExampleDataset`` over audio + ``make_collate``): ``audio`` [B, S] float32 at the
  encoder's rate, ``audio_lengths`` [B] samples;
  cached-feature batches (``ExampleDataset`` over a frozen encoder's cached layers): ``features``
  [B, L, T, D] float32, zero past ``feature_lengths`` [B] frames;
  both: ``ids`` list[str] (example ids), ``examples`` list[Example], plus whatever
  ``task.collate_targets`` returns (e.g. ``tokens_in`` [B, U]) when the examples have targets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .audio import AudioError, AudioReader
from .extract import Utterance
from .feature_cache import cache_utterance
from .manifest import ManifestError, read_manifest
from .provenance import portable_path
from .task import DataSplits, EvalSet, Example, Task
from .validation import NON_EMPTY, checked

log = logging.getLogger(__name__)


def read_entries(manifest: Path) -> list[dict]:
    """Manifest lines as dicts with ``audio_filepath`` resolved and ``id``, ``offset``, ``duration`` known.

    Every audio header is read up front, so a missing, corrupt or empty file stops the run before
    training starts (with manifest:line and path), not hours into an epoch. Ids must be unique:
    an entry without one is named by its audio path relative to the manifest's folder (VoxCeleb
    has thousands of files called ``00001.wav``), plus its span when it is a segment; two entries
    with one id are an error naming both lines, never a silent overwrite.
    """
    reader = AudioReader()
    entries, problems, seen = [], [], {}
    for e in read_manifest(manifest):
        item = dict(e.fields)
        item["audio_filepath"] = str(e.audio_filepath)
        item["id"] = e.utt_id or default_id(e.audio_filepath, Path(manifest).parent, e.offset, e.duration)
        item["offset"] = e.offset
        item["_source"] = f"{manifest}:{e.line}"
        if item["id"] in seen:
            raise ManifestError(
                f"{manifest}:{e.line}: id {item['id']!r} is already used at line {seen[item['id']]}; "
                "ids must be unique (give each entry its own 'id')"
            )
        seen[item["id"]] = e.line
        try:
            seconds = reader.duration(e.audio_filepath)
            if seconds <= 0:
                raise AudioError(f"{e.audio_filepath}: audio is empty (0 samples)")
        except AudioError as err:
            problems.append(f"{manifest}:{e.line}: {err}")
            continue
        item["_span"] = e.duration  # what the manifest asked for: None reads to the end of the file
        item["duration"] = e.duration if e.duration is not None else seconds - e.offset
        if item["duration"] <= 0:
            problems.append(f"{manifest}:{e.line}: offset {e.offset} s is past the end of {e.audio_filepath}")
            continue
        entries.append(item)
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise AudioError(f"{len(problems)} unusable audio file(s):\n  " + "\n  ".join(problems[:10]) + more)
    return entries


def default_id(audio: Path, root: Path, offset: float, duration: float | None) -> str:
    """Audio path relative to ``root`` (else the full path) without its suffix, plus the span of a
    segment that starts inside the file (a whole file usually comes with its duration too)."""
    audio = Path(audio)
    try:
        name = audio.resolve().relative_to(root.resolve()).with_suffix("").as_posix()
    except ValueError:
        name = audio.with_suffix("").as_posix().lstrip("/")
    if offset:
        end = "end" if duration is None else f"{offset + duration:.3f}"
        name += f"@{offset:.3f}-{end}"
    return name


def audio_span(entry: dict) -> tuple[str, float, float | None]:
    """(path, offset, duration) of the audio an entry stands for. ``duration`` is the manifest's own
    (``None``: to the end of the file), whatever the offset; the feature cache keys on the same span."""
    return entry["audio_filepath"], float(entry.get("offset", 0.0)), entry.get("_span", entry.get("duration"))


def cache_utterances(entries: Sequence[dict]) -> list[tuple[float, Utterance]]:
    """(seconds, utterance named by its audio fingerprint) per entry, in order, for the feature cache."""
    return [(e["duration"], cache_utterance(*audio_span(e))) for e in entries]


def crop_window(example: Example, epoch: int, seed: int, index: int) -> tuple[float, float | None]:
    """(offset, duration) within the entry of what ``example`` reads this epoch: a random crop drawn
    from (seed, epoch, index) — so a resumed run draws the same crops — or its fixed window."""
    rest = example.entry["duration"] - example.offset
    span = rest if example.duration is None else min(example.duration, rest)
    if not example.crop or span <= example.crop:
        return example.offset, example.duration
    rng = np.random.default_rng([seed, epoch, index])
    return example.offset + float(rng.uniform(0.0, span - example.crop)), example.crop


class ExampleDataset(Dataset):
    """Task examples read from audio, or from a frozen encoder's cached layers when ``feature_files``
    (one file per entry, ``FeatureCache.file``) is given: then the encoder never runs, and a window
    is a slice of the cached frames (``frame_shift`` seconds each).

    Items are requested as ``(index, epoch)`` (``BucketBatchSampler`` yields them), so random crops
    depend on nothing but (seed, epoch, index), in any worker process.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        task: Task,
        *,
        sample_rate: int = 16000,
        min_samples: int = 0,
        feature_files: dict[str, Path] | None = None,
        frame_shift: float = 0.08,
        seed: int = 0,
    ):
        self.examples = list(examples)
        self.reader = AudioReader(sample_rate)
        self.min_samples, self.feature_files = min_samples, feature_files
        self.frame_shift, self.seed = frame_shift, seed
        self.targets = [task.make_target(ex) for ex in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, item: tuple[int, int] | int) -> dict:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        ex = self.examples[index]
        offset, duration = crop_window(ex, epoch, self.seed, index)
        out = {"target": self.targets[index], "example": ex}
        if self.feature_files is None:
            out["audio"] = torch.from_numpy(self._audio(ex, offset, duration))
        else:
            out["features"] = torch.from_numpy(self._features(ex, offset, duration))
        return out

    def _audio(self, ex: Example, offset: float, duration: float | None) -> np.ndarray:
        path, start, span = audio_span(ex.entry)
        if duration is None and span is not None:
            duration = span - offset
        audio = self.reader.read(path, start + offset, duration)
        if len(audio) < self.min_samples:
            raise AudioError(
                f"{path} ({ex.entry['_source']}): {len(audio)} samples is shorter than one analysis frame "
                f"({self.min_samples})"
            )
        return audio

    def _features(self, ex: Example, offset: float, duration: float | None) -> np.ndarray:
        file = self.feature_files[ex.entry["id"]]
        try:
            array = np.load(file, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise OSError(
                f"{file} (features of {ex.entry['audio_filepath']}): unreadable ({err}); "
                "delete it and rerun to recompute it"
            ) from err
        first = int(round(offset / self.frame_shift))
        last = array.shape[1] if duration is None else first + max(1, int(round(duration / self.frame_shift)))
        return np.array(array[:, first : min(last, array.shape[1])], dtype=np.float32)


def batch_to(batch: dict, device) -> dict:
    """A batch on ``device``: tensors move; ``examples`` (plain records of where each input came
    from) stay as they are. Training (Lightning's hook) and final evaluation both use it."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_collate(task: Task) -> Callable[[list[dict]], dict]:
    """Pads audio or cached layers; targets are batched by the task when every example has one."""

    def collate(items: list[dict]) -> dict:
        examples = [it["example"] for it in items]
        batch: dict = {"examples": examples, "ids": [ex.id for ex in examples]}
        if "audio" in items[0]:
            lengths = torch.tensor([len(it["audio"]) for it in items])
            audio = torch.zeros(len(items), int(lengths.max()))
            for i, it in enumerate(items):
                audio[i, : len(it["audio"])] = it["audio"]
            batch.update(audio=audio, audio_lengths=lengths)
        else:
            lengths = torch.tensor([it["features"].shape[1] for it in items])
            n_layers, _, dim = items[0]["features"].shape
            features = torch.zeros(len(items), n_layers, int(lengths.max()), dim)
            for i, it in enumerate(items):
                features[i, :, : it["features"].shape[1]] = it["features"]
            batch.update(features=features, feature_lengths=lengths)
        targets = [it["target"] for it in items]
        if all(t is not None for t in targets):
            batch.update(task.collate_targets(targets))
        return batch

    return collate


class _EpochForwarder:
    """What Lightning looks for at ``loader.batch_sampler.sampler``: it calls ``set_epoch`` there (and
    on ``loader.sampler``), never on the batch sampler itself."""

    def __init__(self, owner: BucketBatchSampler):
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class BucketBatchSampler(Sampler[list[tuple[int, int]]]):
    """Similar-length batches in an order that depends only on (seed, epoch); yields ``(index, epoch)``.

    Shuffles, groups into pools of ``pool`` batches, sorts each pool by duration, cuts batches and
    shuffles their order. A batch holds at most ``batch_size`` items and, with ``max_batch_duration``,
    at most that many seconds of padded input (longest item x items); an item longer than the cap
    runs alone (with a warning). Because the order is a pure function of the epoch, a run resumed
    from an epoch-end checkpoint sees exactly the batches an uninterrupted run would. Lightning
    sets the epoch through ``self.sampler`` (see ``_EpochForwarder``). Under DDP each rank takes
    every ``world_size``-th batch; ``rank``/``world_size`` left ``None`` are read from the process
    group when iterated, because Lightning starts it only inside ``fit``, after the loaders exist.
    Evaluation (``shuffle=False``) keeps every batch, so ranks may get one batch more or less.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int | None,
        *,
        shuffle: bool,
        seed: int = 0,
        pool: int = 50,
        max_batch_duration: float | None = None,
        rank: int | None = 0,
        world_size: int | None = 1,
    ):
        if batch_size is None and max_batch_duration is None:
            raise ValueError("a batch needs a size cap: batch_size, max_batch_duration or both")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch_size, self.shuffle, self.seed, self.pool = batch_size, shuffle, seed, pool
        self.max_batch_duration = max_batch_duration
        self._rank, self._world_size = rank, world_size
        self.epoch = 0
        self.sampler = _EpochForwarder(self)
        if max_batch_duration is not None:
            alone = int((self.durations > max_batch_duration).sum())
            if alone:
                log.warning(
                    "%d item(s) are longer than TrainerSetup.max_batch_duration = %g s (longest %.1f s): "
                    "each runs alone in its batch",
                    alone,
                    max_batch_duration,
                    float(self.durations.max()),
                )

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else _process_group()[0]

    @property
    def world_size(self) -> int:
        return self._world_size if self._world_size is not None else _process_group()[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        """Consecutive batches of ``order`` (sorted longest first) within the count and duration caps."""
        batches, current, longest = [], [], 0.0
        for i in order.tolist():
            d = float(self.durations[i])
            full = self.batch_size is not None and len(current) >= self.batch_size
            too_long = self.max_batch_duration is not None and max(longest, d) * (len(current) + 1) > (
                self.max_batch_duration
            )
            if current and (full or too_long):
                batches.append(current)
                current, longest = [], 0.0
            current.append(i)
            longest = max(longest, d)
        if current:
            batches.append(current)
        return batches

    def _batches(self) -> list[list[int]]:
        n = len(self.durations)
        if not self.shuffle:
            return self._cut(np.argsort(-self.durations, kind="stable"))
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(n)
        typical = max(float(np.median(self.durations)), 1e-3)
        per_batch = self.batch_size or max(1, int(self.max_batch_duration // typical))
        chunk = per_batch * self.pool
        batches = []
        for start in range(0, n, chunk):
            idx = perm[start : start + chunk]
            batches += self._cut(idx[np.argsort(-self.durations[idx], kind="stable")])
        rng.shuffle(batches)
        return batches

    def _mine(self) -> list[list[int]]:
        batches, world, rank = self._batches(), self.world_size, self.rank
        if not self.shuffle:
            return batches[rank::world]
        usable = len(batches) - len(batches) % world  # every rank takes as many steps (DDP would hang)
        return batches[rank:usable:world]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self._mine():
            yield [(i, self.epoch) for i in batch]

    def __len__(self) -> int:
        if self.max_batch_duration is None and self.shuffle:
            return math.ceil(len(self.durations) / self.batch_size) // self.world_size
        return len(self._mine())


def _process_group() -> tuple[int, int]:
    """(rank, world size) of the running ``torch.distributed`` group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def data_fingerprint(manifests: Sequence[Path]) -> str:
    """sha256 over what the data are, not where they sit: each manifest's entries with audio named
    relative to the manifest (or by their last three path parts), and each audio file's size. The
    same data on two machines, or under two checkouts, give one fingerprint."""
    h = hashlib.sha256()
    for m in manifests:
        m = Path(m)
        h.update(m.name.encode())
        for e in read_manifest(m, check_audio=False):
            fields = {k: v for k, v in e.fields.items() if k != "audio_filepath"}
            name = portable_path(Path(e.audio_filepath).resolve(), root=m.parent, tail=3)
            size = e.audio_filepath.stat().st_size if e.audio_filepath.exists() else -1
            h.update(json.dumps([name, size, fields], sort_keys=True, default=str).encode())
    return h.hexdigest()


class ManifestData:
    """Any task's data as ready-made manifests (NeMo JSONL or lhotse CutSet) per split.

    ``tests`` names further evaluation sets (``{'voxceleb1_o': 'o.jsonl', ...}``); ``test`` is the
    one called ``test``. ``references`` gives each set's native reference files when the manifest
    does not carry them (``{'test': {'trials': 'trials.txt'}}``).
    """

    eval_recordings = "as listed"

    @checked(train=NON_EMPTY, dev=NON_EMPTY)
    def __init__(
        self,
        train: Sequence[str] | str,
        dev: str,
        test: str | None = None,
        tests: dict[str, str] | None = None,
        references: dict[str, dict[str, str]] | None = None,
    ):
        self.train = tuple(Path(p) for p in ([train] if isinstance(train, str) else train))
        self.dev = Path(dev)
        self.tests = {**({"test": Path(test)} if test else {}), **{k: Path(v) for k, v in (tests or {}).items()}}
        self.references = {s: {k: Path(v) for k, v in r.items()} for s, r in (references or {}).items()}

    def missing(self) -> list[str]:
        refs = [p for r in self.references.values() for p in r.values()]
        manifests = [*self.train, self.dev, *self.tests.values()]
        return [f"manifest {p} does not exist" for p in manifests if not p.is_file()] + [
            f"reference file {p} does not exist" for p in refs if not p.is_file()
        ]

    def prepare(self, work_dir: Path) -> DataSplits:
        def named(name: str, path: Path) -> EvalSet:
            return EvalSet(name, path, self.references.get(name, {}))

        return DataSplits(
            train=self.train,
            dev=named("dev", self.dev),
            tests=tuple(named(k, v) for k, v in self.tests.items()),
        )
