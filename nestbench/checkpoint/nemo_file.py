"""Read a NeMo checkpoint (`.nemo` archive or unpacked folder) into a plain config dict and state dict.

Nothing from the checkpoint is trusted: the archive goes through `safe_extract`, the YAML through
`yaml.safe_load` and the weights through `torch.load(weights_only=True)`, with no fallback to full
unpickling, because a `.nemo` file is arbitrary content downloaded from the internet.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from nestbench.checkpoint.hub import cache_root, resolve_checkpoint
from nestbench.checkpoint.safe_tar import CheckpointError, safe_extract

from ..fileio import atomic_write

logger = logging.getLogger("nestbench.checkpoint")

CONFIG_NAME = "model_config.yaml"
WEIGHTS_NAME = "model_weights.ckpt"
_HASH_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class NemoCheckpoint:
    """A loaded checkpoint plus where it came from, so runs can record provenance."""

    config: dict[str, Any] = field(repr=False)
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    source: str
    path: Path
    sha256: str


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so multi-GB checkpoints do not need to fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_complete(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def extract_to_cache(archive: Path, sha256: str, cache_dir: str | Path | None = None) -> Path:
    """Return `<cache_dir>/nemo/<sha256>/` holding the config and weights of `archive`, extracting once.

    The folder name is the archive's hash, so a complete folder is always the right content and
    is reused as is; it only ever appears via an atomic rename inside `safe_extract`.
    """
    dest = cache_root(cache_dir) / "nemo" / sha256
    if _is_complete(dest):
        return dest
    if dest.exists():  # not produced by us (tampered or foreign); move aside atomically, then drop it
        dest.parent.mkdir(parents=True, exist_ok=True)
        stale = Path(tempfile.mkdtemp(prefix=f".{sha256}.stale-", dir=dest.parent))
        dest.replace(stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    logger.info("extracting %s into %s", archive, dest)
    try:
        safe_extract(archive, dest, members=[CONFIG_NAME, WEIGHTS_NAME])
    except FileExistsError:  # another process published it between our check and our call
        if not _is_complete(dest):
            raise
    return dest


def read_config(path: Path) -> dict[str, Any]:
    """Load the model config; saved training configs nest it under `model:`, exported ones do not."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CheckpointError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"config {path} is not a mapping (got {type(config).__name__})")
    nested = config.get("model")
    if isinstance(nested, dict) and "encoder" not in config:
        config = nested
    return config


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Load a flat state dict with the restricted unpickler; refused pickles are never retried unsafely."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to unpickle {path}: it contains objects that torch.load(weights_only=True) "
            f"does not allow, and nestbench never loads checkpoints with weights_only=False ({exc})"
        ) from exc
    except Exception as exc:  # corrupt zip, truncated file, unreadable storage: all mean "bad weights"
        raise CheckpointError(f"cannot read weights {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"weights {path} are not a state dict (got {type(state).__name__})")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"weights {path} are not a flat str -> Tensor state dict: key {key!r} holds {type(value).__name__}"
            )
    return dict(state)


def load_nemo(source: str | Path, *, cache_dir: str | Path | None = None) -> NemoCheckpoint:
    """Load a `.nemo` file, an unpacked `.nemo` folder or a hub id into a `NemoCheckpoint`.

    `sha256` is that of the archive (or of `model_weights.ckpt` for a folder), the identity to
    record with results.
    """
    path = resolve_checkpoint(source, cache_dir)
    if path.is_dir():
        folder = path
        if not _is_complete(folder):
            raise CheckpointError(f"folder {folder} must contain {CONFIG_NAME} and {WEIGHTS_NAME}")
        sha256 = file_sha256(folder / WEIGHTS_NAME)
    else:
        sha256 = file_sha256(path)
        folder = extract_to_cache(path, sha256, cache_dir)
    return NemoCheckpoint(
        config=read_config(folder / CONFIG_NAME),
        state_dict=read_weights(folder / WEIGHTS_NAME),
        source=str(source),
        path=path,
        sha256=sha256,
    )


def split_state_dict(
    state_dict: dict[str, torch.Tensor], prefixes: Sequence[str] = ("preprocessor.", "encoder.")
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, int]]:
    """Group the keys under `prefixes` (prefix stripped) and count the rest by top-level module.

    NEST checkpoints carry SSL-only modules (quantizer, decoder, loss) that inference does not use;
    counting them, rather than failing, lets callers report what was dropped.
    """
    groups: dict[str, dict[str, torch.Tensor]] = {prefix.rstrip("."): {} for prefix in prefixes}
    ignored: Counter[str] = Counter()
    for key, tensor in state_dict.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            ignored[key.split(".", 1)[0]] += 1
        else:
            groups[prefix.rstrip(".")][key[len(prefix) :]] = tensor
    if ignored:
        detail = ", ".join(f"{module}: {count}" for module, count in sorted(ignored.items()))
        total = sum(ignored.values())
        logger.info("ignoring %d checkpoint keys outside %s (%s)", total, list(prefixes), detail)
    return groups, dict(ignored)


def write_nemo(path: str | Path, config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a `.nemo` archive (``./model_config.yaml`` + ``./model_weights.ckpt``) atomically.

    The layout is NeMo's own, so the files nestbench writes load in NeMo and in nestbench alike.
    """
    import io
    import tarfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, weights)
    members = {CONFIG_NAME: yaml.safe_dump(config, sort_keys=False).encode(), WEIGHTS_NAME: weights.getvalue()}
    # a private temporary name: processes writing the same archive at once (sweep workers building the
    # same tiny encoder) each publish a complete file, and the last rename wins with identical bytes
    with atomic_write(path, permissions=0o644) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path
