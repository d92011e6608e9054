"""Per-layer feature extraction to disk (``nestbench extract``), resumable and length-batched.

Output layout, one folder per extraction:
  ``<utt_id>.npy``   float32 [n_layers, T, D]: the chosen conformer layers' outputs, valid frames only
  ``index.jsonl``    one line per finished utterance (utt id, source, frames, layers, ...)
  ``meta.json``      model, checkpoint hash, layers, dtype — a rerun must match it
  ``bad_inputs.jsonl`` with ``skip_bad``: the files that could not be used and why

An utterance counts as done only when its ``.npy`` exists *and* its index line was written (the
array is written to a temporary name and renamed first), so a killed run resumes where it stopped.
Each index line records what the features were made from (``made_from``: resolved path, size,
mtime_ns, offset, duration); an id whose input changed since is recomputed, with a warning.

``encode_utterances`` (length-sorted batches in, per-utterance arrays out) and ``save_npy_atomic``
are the reusable core: ``nestbench.feature_cache`` composes them for frozen-encoder training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .audio import AudioError, AudioReader
from .encoder import NestEncoder
from .fileio import atomic_write, write_text_atomic
from .manifest import read_manifest

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
INDEX = "index.jsonl"
META = "meta.json"
BAD = "bad_inputs.jsonl"


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    path: Path
    offset: float = 0.0
    duration: float | None = None


@dataclass
class ExtractionReport:
    output_dir: Path
    written: list[str] = field(default_factory=list)
    already_done: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    padded_samples: int = 0
    batch_samples: int = 0

    @property
    def padding_fraction(self) -> float:
        """Share of computed samples that were padding (length-sorted batching keeps this small)."""
        return self.padded_samples / self.batch_samples if self.batch_samples else 0.0


def find_inputs(source: str | Path) -> list[Utterance]:
    """A NeMo JSONL manifest, one audio file, or a folder searched recursively for audio files."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
        utts = [Utterance(p.stem, p) for p in files]
    elif source.suffix.lower() in (".json", ".jsonl"):
        utts = [
            Utterance(e.utt_id or e.audio_filepath.stem, e.audio_filepath, e.offset, e.duration)
            for e in read_manifest(source)
        ]
    elif source.is_file():
        utts = [Utterance(source.stem, source)]
    else:
        raise FileNotFoundError(f"{source}: no such manifest, audio file or folder")
    _check_ids(utts, source)
    return utts


def parse_layers(spec: str | Sequence[int], n_layers: int) -> list[int]:
    """``all`` | ``last`` | ``i,j,...`` (0-based, negatives count from the end) -> sorted unique ids."""
    if isinstance(spec, str):
        spec = spec.strip().lower()
        if spec == "all":
            return list(range(n_layers))
        if spec == "last":
            return [n_layers - 1]
        try:
            ids = [int(s) for s in spec.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--layers {spec!r}: expected 'all', 'last' or comma-separated integers") from None
    else:
        ids = list(spec)
    bad = [i for i in ids if not -n_layers <= i < n_layers]
    if bad or not ids:
        raise ValueError(f"--layers {spec!r}: the model has {n_layers} layers (0..{n_layers - 1})")
    return sorted({i % n_layers for i in ids})


def extract_features(
    encoder: NestEncoder,
    inputs: Iterable[Utterance],
    output_dir: str | Path,
    *,
    layers: str | Sequence[int] = "all",
    batch_size: int = 8,
    max_batch_seconds: float = 320.0,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    skip_bad: bool = False,
    progress: bool = True,
) -> ExtractionReport:
    """Encode ``inputs`` and write one ``.npy`` per utterance; finished utterances are skipped.

    Batches are formed from length-sorted utterances and capped at ``max_batch_seconds`` of padded
    audio, so long recordings run alone (attention then runs in exact row blocks: see
    ``encoder/attention.py``). ``dtype='bfloat16'`` autocasts the encoder; the mel front end stays fp32.
    """
    start = time.perf_counter()
    check_device(device)
    out = Path(output_dir)
    layer_ids = parse_layers(layers, encoder.n_layers)
    out.mkdir(parents=True, exist_ok=True)
    _check_meta(out, encoder, layer_ids, dtype)
    done = _finished(out)
    report = ExtractionReport(out)
    reader = AudioReader(encoder.sample_rate)
    todo, made_from, changed = [], {}, set()
    for utt in inputs:
        try:
            made_from[utt.utt_id] = _made_from(utt)
            if utt.utt_id in done:
                if done[utt.utt_id] == made_from[utt.utt_id]:
                    report.already_done += 1
                    continue
                why = "its input changed since it was extracted" if done[utt.utt_id] else "its input was not recorded"
                log.warning("%s: %s; recomputing it", utt.utt_id, why)
                changed.add(utt.utt_id)
            seconds = utt.duration if utt.duration is not None else reader.duration(utt.path) - utt.offset
        except (AudioError, OSError) as err:
            _bad(report, out, utt, err, skip_bad)
            continue
        todo.append((seconds, utt))
    if changed:
        _forget(out, changed)
    batches = encode_utterances(
        encoder,
        todo,
        layer_ids,
        batch_size=batch_size,
        max_batch_seconds=max_batch_seconds,
        device=device,
        dtype=dtype,
        on_bad=lambda utt, err: _bad(report, out, utt, err, skip_bad),
        reader=reader,
        progress=progress,
    )
    with open(out / INDEX, "a", encoding="utf-8") as index:
        for batch in batches:
            report.batch_samples += batch.batch_samples
            report.padded_samples += batch.batch_samples - sum(e.n_samples for e in batch.items)
            for item in batch.items:
                _write_one(item, made_from[item.utt.utt_id], encoder.sample_rate, layer_ids, out, index, report)
    if reader.conversions:
        log.warning("audio conversions: %s", dict(reader.conversions))
    report.wall_seconds = time.perf_counter() - start
    return report


@dataclass(frozen=True)
class Encoded:
    """One utterance's layers: ``array`` float32 [n_layers, T, D], valid frames only."""

    utt: Utterance
    array: np.ndarray
    n_samples: int


@dataclass(frozen=True)
class EncodedBatch:
    items: list[Encoded]
    batch_samples: int  # samples the encoder computed, padding included


def encode_utterances(
    encoder: NestEncoder,
    todo: Sequence[tuple[float, Utterance]],
    layer_ids: Sequence[int],
    *,
    batch_size: int = 8,
    max_batch_seconds: float = 320.0,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    on_bad: Callable[[Utterance, AudioError], None] | None = None,
    skip: Callable[[Utterance], bool] | None = None,
    reader: AudioReader | None = None,
    progress: bool = True,
    desc: str = "extract",
) -> Iterator[EncodedBatch]:
    """Encode ``(seconds, utterance)`` pairs longest first, one batch at a time.

    Length-sorted batches keep padding small; a batch is capped at ``max_batch_seconds`` of padded
    audio so long recordings run alone. ``on_bad`` gets unusable audio (default: raise); ``skip`` is
    asked just before a batch is read, so a caller can drop utterances another process finished in
    the meantime. ``dtype='bfloat16'`` autocasts the encoder; the mel front end stays fp32.
    """
    autocast_dtype = {"float32": None, "bfloat16": torch.bfloat16}[dtype]
    reader = reader or AudioReader(encoder.sample_rate)
    device = check_device(device)
    encoder = encoder.to(device).eval()
    ordered = sorted(todo, key=lambda item: -item[0])
    bar = tqdm(total=len(ordered), unit="utt", desc=desc, disable=not progress)
    try:
        for batch in _batches(ordered, batch_size, max_batch_seconds):
            audio = []
            for utt in batch:
                if skip is not None and skip(utt):
                    bar.update(1)
                    continue
                try:
                    samples = reader.read(utt.path, utt.offset, utt.duration)
                    if len(samples) < encoder.min_samples:
                        raise AudioError(
                            f"{utt.path}: {len(samples)} samples is shorter than one analysis frame "
                            f"({encoder.min_samples} samples at {encoder.sample_rate} Hz)"
                        )
                    audio.append((utt, samples))
                except AudioError as err:
                    if on_bad is None:
                        raise
                    on_bad(utt, err)
                    bar.update(1)
            if audio:
                yield _encode(encoder, audio, layer_ids, device, autocast_dtype)
                bar.update(len(audio))
    finally:
        bar.close()


def _encode(encoder, audio, layer_ids, device, autocast_dtype) -> EncodedBatch:
    lengths = torch.tensor([len(s) for _, s in audio])
    batch = torch.zeros(len(audio), int(lengths.max()))
    for i, (_, samples) in enumerate(audio):
        batch[i, : len(samples)] = torch.from_numpy(samples)
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        result = encoder(batch.to(device), lengths.to(device), layers=list(layer_ids))
    stacked = result.stacked().float().cpu()
    items = [
        Encoded(utt, stacked[:, i, : int(result.lengths[i])].numpy(), len(samples))
        for i, (utt, samples) in enumerate(audio)
    ]
    return EncodedBatch(items, batch.numel())


def check_device(device: str | torch.device) -> torch.device:
    """The device, or a one-line ``ValueError`` when torch cannot use it here: found before any output
    exists, instead of a driver error after the model is loaded and the folder made."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {str(device)!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    if dev.type == "cpu":
        return dev
    backend = getattr(torch, dev.type, None)  # torch.cuda, torch.mps, torch.xpu, ...
    if not (hasattr(backend, "is_available") and backend.is_available()):
        raise ValueError(f"device {str(device)!r} is not available: torch finds no {dev.type} device on this machine")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if dev.index is not None and dev.index >= count:
        raise ValueError(
            f"device {str(device)!r} is not available: this machine has {count} {dev.type} device(s), "
            f"{dev.type}:0 to {dev.type}:{count - 1}"
        )
    return dev


def _made_from(utt: Utterance) -> dict:
    """What an utterance's features are computed from: a rewritten, moved or re-cut input differs."""
    path = utt.path.resolve()
    stat = path.stat()
    return {
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "offset": utt.offset,
        "duration": utt.duration,
    }


def _write_one(
    item: Encoded, made_from: dict, sample_rate: int, layer_ids, out: Path, index, report: ExtractionReport
) -> None:
    target = out / f"{item.utt.utt_id}.npy"
    save_npy_atomic(target, item.array)
    record = {
        "utt_id": item.utt.utt_id,
        "source": str(item.utt.path),
        "offset": item.utt.offset,
        "duration": item.n_samples / sample_rate,
        "frames": item.array.shape[1],
        "layers": list(layer_ids),
        "shape": list(item.array.shape),
        "file": target.name,
        "made_from": made_from,
    }
    index.write(json.dumps(record) + "\n")
    index.flush()
    report.written.append(item.utt.utt_id)
    report.audio_seconds += item.n_samples / sample_rate


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` so that ``path`` is either absent or complete, even with concurrent writers."""
    with atomic_write(path) as f:
        np.save(f, array)


def _batches(todo, batch_size: int, max_batch_seconds: float):
    batch: list[Utterance] = []
    longest = 0.0
    for seconds, utt in todo:
        if batch and (len(batch) == batch_size or max(longest, seconds) * (len(batch) + 1) > max_batch_seconds):
            yield batch
            batch, longest = [], 0.0
        batch.append(utt)
        longest = max(longest, seconds)
    if batch:
        yield batch


def _finished(out: Path) -> dict[str, dict | None]:
    """Utterance id -> what its features were made from (None: not recorded, by an older nestbench),
    for utterances whose index line and array both exist; a torn last index line is dropped."""
    path = out / INDEX
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    good, done = [], {}
    for n, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                log.warning("%s: dropping a truncated last line (an interrupted run)", path)
                continue
            raise ValueError(f"{path}:{n}: corrupt index line; delete the folder to start over") from None
        if (out / record["file"]).exists():
            good.append(line if line.endswith("\n") else line + "\n")
            done[record["utt_id"]] = record.get("made_from")
    if len(good) != len(lines):
        write_text_atomic(path, "".join(good))
    return done


def _forget(out: Path, utt_ids: set[str]) -> None:
    """Remove stale utterances' index lines, then their arrays: no stale array outlives a failed recompute."""
    path = out / INDEX
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    write_text_atomic(path, "".join(line for line in lines if json.loads(line)["utt_id"] not in utt_ids))
    for utt_id in utt_ids:
        (out / f"{utt_id}.npy").unlink(missing_ok=True)


def _check_meta(out: Path, encoder: NestEncoder, layer_ids: list[int], dtype: str) -> None:
    meta = {
        "model": encoder.source,
        "checkpoint_sha256": encoder.checkpoint_sha256,
        "layers": layer_ids,
        "dtype": dtype,
        "n_layers": encoder.n_layers,
        "d_model": encoder.d_model,
        "frame_shift_seconds": encoder.frame_shift,
        "sample_rate": encoder.sample_rate,
    }
    path = out / META
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        keys = ("checkpoint_sha256", "layers", "dtype")
        changed = [k for k in keys if old.get(k) != meta[k]]
        if changed:
            raise ValueError(
                f"{out} already holds features made with different {', '.join(changed)} "
                f"({ {k: old.get(k) for k in changed} }); choose another --output or delete it"
            )
        return
    write_text_atomic(path, json.dumps(meta, indent=2) + "\n")


def _bad(report: ExtractionReport, out: Path, utt: Utterance, err: Exception, skip_bad: bool) -> None:
    if not skip_bad:
        raise err
    report.bad.append((str(utt.path), str(err)))
    with open(out / BAD, "a", encoding="utf-8") as f:
        f.write(json.dumps({"utt_id": utt.utt_id, "source": str(utt.path), "error": str(err)}) + "\n")
    log.warning("skipping %s", err)


def _check_ids(utts: list[Utterance], source: Path) -> None:
    seen: dict[str, Path] = {}
    for u in utts:
        if not u.utt_id or "/" in u.utt_id or "\\" in u.utt_id or u.utt_id.startswith("."):
            raise ValueError(f"{source}: utterance id {u.utt_id!r} ({u.path}) cannot be a file name")
        if u.utt_id in seen:
            raise ValueError(
                f"{source}: utterance id {u.utt_id!r} is used by both {seen[u.utt_id]} and {u.path}; "
                "give each entry a unique 'id' in a manifest"
            )
        seen[u.utt_id] = u.path
