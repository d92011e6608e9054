"""Frozen-encoder features computed once and kept on disk, so that every run and every sweep trial
with the same encoder, layers and audio trains only its head (no audio decoding, mel or conformer).

Layout under ``<cache>/features/<key>/`` (``<cache>``: ``EncoderSetup.cache_dir``, else ``$NESTBENCH_CACHE``,
else ``~/.cache/nestbench``):
  ``meta.json``            what the key stands for (checkpoint, layers, preprocessing), for people
  ``<fp[:2]>/<fp>.npy``    float32 [n_layers, T, D] for one utterance: the chosen layers, valid frames only

``key`` is a sha256 over everything that decides the numbers: the encoder weights (the checkpoint's
sha256), the layer ids, the mel and conformer configs, the compute dtype and this layout's version.
``fp`` is a sha256 over which audio, in which version: resolved path, size, mtime_ns, offset and
duration. A manifest that changes therefore recomputes only the utterances that changed.

Every array is published with ``save_npy_atomic`` (own temporary file + ``os.replace``), so a file
that exists is complete: "exists" means "cached" for readers, resumed runs and concurrent workers.
Two workers computing the same utterance each publish a whole file and the last rename wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import default_cache_dir
from .encoder import NestEncoder
from .encoder.config import ConformerConfig, MelConfig
from .extract import Utterance, encode_utterances, save_npy_atomic
from .fileio import write_text_atomic

log = logging.getLogger(__name__)

LAYOUT_VERSION = 2  # 2: storage dtype, fill device class and precision in the key
CODE_VERSION = 1  # bump when nestbench's encoder code changes its numbers (mel, attention, ...)
META = "meta.json"
STORAGE_DTYPES = ("float32", "float16")


def feature_key(
    weights_id: str,
    layer_ids: Sequence[int],
    mel: MelConfig,
    conformer: ConformerConfig,
    dtype: str = "float32",
    device_class: str = "cpu",
    precision: str = "float32",
) -> str:
    """sha256 (hex) naming one set of cached features; equal inputs give equal keys in any process.

    ``dtype`` is the storage dtype; ``device_class`` (``cpu``, ``cuda``) and ``precision`` (the compute
    precision, e.g. TF32 on a GPU) are in the key because their features differ in the last bits.
    """
    identity = {
        "layout": LAYOUT_VERSION,
        "code": CODE_VERSION,
        "weights": weights_id,
        "layers": [int(i) for i in layer_ids],
        "mel": asdict(mel),
        "conformer": asdict(conformer),
        "dtype": dtype,
        "device_class": device_class,
        "precision": precision,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def utterance_fingerprint(path: str | Path, offset: float = 0.0, duration: float | None = None) -> str:
    """Which audio, in which version: a re-written or re-cut file gets a new fingerprint.

    ``duration`` is the span actually read (``None``: to the end of the file), as the audio datasets read it.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    ident = [
        str(resolved),
        stat.st_size,
        stat.st_mtime_ns,
        float(offset),
        None if duration is None else float(duration),
    ]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


def cache_utterance(path: str | Path, offset: float = 0.0, duration: float | None = None) -> Utterance:
    """An ``extract.Utterance`` whose id is its fingerprint (the file name in the cache)."""
    return Utterance(utterance_fingerprint(path, offset, duration), Path(path), offset, duration)


@dataclass(frozen=True)
class CacheStats:
    key: str
    hits: int
    computed: int

    def as_record(self) -> dict:
        return {"key": self.key, "hits": self.hits, "computed": self.computed}


class FeatureCache:
    """One key's folder of per-utterance arrays; ``fill`` computes what is missing, ``file`` finds it."""

    def __init__(self, key: str, root: str | Path | None = None, dtype: str = "float32"):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"feature cache dtype {dtype!r}: expected one of {STORAGE_DTYPES}")
        self.key, self.dtype = key, dtype
        self.folder = Path(root or default_cache_dir()) / "features" / key

    def file(self, fingerprint: str) -> Path:
        return self.folder / fingerprint[:2] / f"{fingerprint}.npy"

    def load(self, fingerprint: str) -> np.ndarray:
        return np.load(self.file(fingerprint))

    def fill(
        self,
        todo: Sequence[tuple[float, Utterance]],
        encoder: Callable[[], NestEncoder],
        layer_ids: Sequence[int],
        *,
        meta: dict | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        max_batch_seconds: float = 320.0,
        progress: bool = True,
        bytes_per_second: float = 0.0,
    ) -> CacheStats:
        """Compute the ``(seconds, utterance)`` pairs (ids from ``cache_utterance``) not cached yet.

        ``encoder`` is called only when something is missing, so a warm cache never builds the
        model. An utterance another process publishes while this one runs is skipped, not recomputed.
        """
        unique = list({u.utt_id: (s, u) for s, u in todo}.values())
        missing = [(s, u) for s, u in unique if not self.file(u.utt_id).exists()]
        computed = 0
        if missing:
            self._check_room(missing, bytes_per_second)
            self.folder.mkdir(parents=True, exist_ok=True)
            if meta is not None and not (self.folder / META).exists():
                write_text_atomic(self.folder / META, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
            for sub in {u.utt_id[:2] for _, u in missing}:
                (self.folder / sub).mkdir(exist_ok=True)
            batches = encode_utterances(
                encoder(),
                missing,
                layer_ids,
                batch_size=batch_size,
                max_batch_seconds=max_batch_seconds,
                device=device,
                skip=lambda u: self.file(u.utt_id).exists(),
                progress=progress,
                desc="features",
            )
            for batch in batches:
                for item in batch.items:
                    save_npy_atomic(self.file(item.utt.utt_id), item.array.astype(self.dtype, copy=False))
                computed += len(batch.items)
        stats = CacheStats(self.key, len(unique) - computed, computed)
        log.info("features: %d cached, %d computed (%s)", stats.hits, stats.computed, self.folder)
        return stats

    def _check_room(self, missing: Sequence[tuple[float, Utterance]], bytes_per_second: float) -> None:
        """Say how much the fill will write, and refuse before starting when the disk cannot hold it."""
        import shutil

        need = sum(s for s, _ in missing) * bytes_per_second
        self.folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folder).free
        log.info(
            "features: %d utterance(s) to compute, about %.2f GB in %s (%.1f GB free)",
            len(missing), need / 1e9, self.folder, free / 1e9,
        )  # fmt: skip
        if need > 0.95 * free:
            raise OSError(
                f"the feature cache needs about {need / 1e9:.1f} GB in {self.folder}, but only {free / 1e9:.1f} GB "
                "are free: set EncoderSetup.cache_dtype = 'float16' (half the size), fewer EncoderSetup.layers, "
                "another EncoderSetup.cache_dir, or EncoderSetup.cache_features = False"
            )
