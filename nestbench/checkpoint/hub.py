"""Turn what the user typed (a `.nemo` file, an unpacked folder or a Hugging Face id) into a local path.

Lookup order for a hub id `owner/name`, cheapest and most offline-friendly first:

1. a manual placement at `<cache_dir>/hub/<owner>/<name>/<name>.nemo` (for machines without network:
   download the file elsewhere and copy it there);
2. the Hugging Face cache kept under `<cache_dir>/huggingface` (`try_to_load_from_cache`);
3. `hf_hub_download` into that cache, unless `HF_HUB_OFFLINE` is set.

If all fail, the error says which URL to fetch and where to put the file.

A path that ``make_tiny_nest`` names (``<cache_dir>/tiny/tiny_nest_….nemo``) is built there on
first resolution: specs only name that encoder, so parsing one writes nothing.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from nestbench.checkpoint.safe_tar import CheckpointError

logger = logging.getLogger("nestbench.checkpoint")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRUTHY = {"1", "true", "yes", "on"}


def default_cache_dir() -> Path:
    """`$NESTBENCH_CACHE` if set, else `~/.cache/nestbench`; read here only, so tests can redirect it."""
    configured = os.environ.get("NESTBENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "nestbench"


def cache_root(cache_dir: str | Path | None) -> Path:
    """The cache directory to use: the caller's choice, or the default."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def is_hub_id(source: str) -> bool:
    """True for strings shaped like `owner/name` that do not name a local `.nemo` file."""
    return bool(_HUB_ID.match(source)) and not source.endswith(".nemo")


def hub_filename(repo_id: str) -> str:
    """NeMo model repos hold a single archive named after the repo: `<name>.nemo`."""
    return f"{repo_id.split('/')[1]}.nemo"


def hub_url(repo_id: str) -> str:
    return f"https://huggingface.co/{repo_id}/resolve/main/{hub_filename(repo_id)}"


def hub_placement(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """Where a manually downloaded archive for `repo_id` is looked for before any network access."""
    owner, name = repo_id.split("/")
    return cache_root(cache_dir) / "hub" / owner / name / hub_filename(repo_id)


def _offline() -> bool:
    # Read at call time: huggingface_hub reads HF_HUB_OFFLINE once at import, too early for tests and CLIs.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def _not_available(repo_id: str, cache_dir: str | Path | None, reason: str) -> CheckpointError:
    hint = "" if _offline() else "\n  (without network, set HF_HUB_OFFLINE=1 to skip the download attempt)"
    return CheckpointError(
        f"cannot get {hub_filename(repo_id)} for hub id {repo_id!r} ({reason}).\n"
        f"  Download {hub_url(repo_id)}\n"
        f"  and place it at {hub_placement(repo_id, cache_dir)} so it is found next time,\n"
        f"  or pass the file directly with --model /path/to/{hub_filename(repo_id)}{hint}"
    )


def fetch_from_hub(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    """Return a local copy of the `.nemo` archive of `repo_id`, downloading only when allowed."""
    placed = hub_placement(repo_id, cache_dir)
    if placed.is_file():
        return placed
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    hf_cache = cache_root(cache_dir) / "huggingface"
    filename = hub_filename(repo_id)
    try:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache)
    except ValueError as exc:  # huggingface_hub's HFValidationError: stricter than our shape check
        raise CheckpointError(f"{repo_id!r} is not a valid hub id: {exc}") from exc
    if isinstance(cached, str):
        return Path(cached)
    if _offline():
        raise _not_available(repo_id, cache_dir, "HF_HUB_OFFLINE is set and it is not cached")
    logger.info("downloading %s into %s", hub_url(repo_id), hf_cache)
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=hf_cache))
    except Exception as exc:  # any network/HTTP/hub failure gets the same actionable advice
        raise _not_available(repo_id, cache_dir, f"download failed: {type(exc).__name__}: {exc}") from exc


def _local(source: str | Path) -> Path | None:
    """The file or folder `source` names, built first if it is a `make_tiny_nest` reference."""
    text = str(source)
    path = Path(source).expanduser()
    if text.strip() and (path.is_file() or path.is_dir()):  # Path("") is ".", which must not mean "here"
        return path
    from nestbench.encoder.tiny import build_tiny_nest, tiny_nest_args

    return build_tiny_nest(path) if tiny_nest_args(path) is not None else None


def resolve_checkpoint(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Map a `.nemo` file, an unpacked `.nemo` folder or a hub id `owner/name` to a local path."""
    text = str(source)
    path = _local(source)
    if path is not None:
        return path
    if isinstance(source, str) and is_hub_id(text):
        return fetch_from_hub(text, cache_dir)
    raise CheckpointError(
        f"{text!r} is not a file, folder or hub id: expected a .nemo file, an unpacked .nemo folder, "
        "or a Hugging Face id like 'nvidia/ssl_en_nest_large_v1.0'"
    )


def checkpoint_status(source: str | Path, cache_dir: str | Path | None = None) -> tuple[Path | None, str | None]:
    """Without touching the network: (local path, None) or (None, what to download and where).

    A `make_tiny_nest` reference is built here, as in `resolve_checkpoint`: it needs no network.

    Lets a run report a missing checkpoint together with missing data before any work starts.
    """
    text = str(source)
    path = _local(source)
    if path is not None:
        return path, None
    if isinstance(source, str) and is_hub_id(text):
        placed = hub_placement(text, cache_dir)
        if placed.is_file():
            return placed, None
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(text, hub_filename(text), cache_dir=cache_root(cache_dir) / "huggingface")
        except ValueError:
            cached = None
        if isinstance(cached, str):
            return Path(cached), None
        return None, (
            f"checkpoint {text}: download {hub_url(text)} and place it at {placed} "
            f"(or it is downloaded automatically when online)"
        )
    return None, f"checkpoint {text!r}: no such .nemo file or folder"
