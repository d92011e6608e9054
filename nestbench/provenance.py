"""What a result needs to be reproducible: code version, packages, machine, config hash."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = (
    "nestbench",
    "torch",
    "torchaudio",
    "lightning",
    "gin-config",
    "numpy",
    "wandb",
    "optuna",
    "sentencepiece",
    "jiwer",
    "sacrebleu",
    "pyannote.metrics",
)


def short_hash(value) -> str:
    """12 hex digits of sha256 over ``value`` as sorted JSON: names a prepared-data folder by its inputs."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def git_state(path: str | Path = ".") -> dict:
    """Commit of the checkout holding ``path``, whether it has uncommitted changes, and how many
    files git neither tracks nor ignores: a new source file changes the code as much as an edit."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changes = git("status", "--porcelain", "--untracked-files=all").splitlines()
    except (subprocess.CalledProcessError, FileNotFoundError, NotADirectoryError):
        return {"commit": None, "dirty": None, "untracked": None}
    untracked = sum(line.startswith("?? ") for line in changes)
    return {"commit": commit, "dirty": bool(changes), "untracked": untracked}


def package_versions(names=PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def config_hash(operative_config: str) -> str:
    """sha256 of the operative config with comments and blank lines dropped (they don't change a run)."""
    lines = [ln.rstrip() for ln in operative_config.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def device_info(accelerator: str = "cpu") -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available() and accelerator != "cpu":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def portable_path(value: str | Path | None, root: Path | None = None, tail: int = 1) -> str | None:
    """A path as a record may carry it: relative to ``root`` (default the working directory) when
    under it, ``<cache>/…`` when under nestbench's cache, else its last ``tail`` parts; hub ids and
    relative paths stay as given. Records and fingerprints then match across machines."""
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_absolute():
        if root is None:
            return str(value)
        path = path.resolve()  # under a relative root (``--runs-dir runs``): relative to it, not to the cwd
    from .checkpoint import default_cache_dir

    for base, label in ((Path(root or Path.cwd()), None), (Path(default_cache_dir()), "<cache>")):
        try:
            rel = path.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
        return rel if label is None else f"{label}/{rel}"
    return "/".join(path.parts[-tail:])


def run_provenance(spec, name: str, seed: int, optimizer, runs: Path, run_dir: Path, started: float) -> dict:
    """The half of every results record that says how to reproduce it: the spec (and its overrides,
    operative config hash), the code (commit of this checkout), packages, seed and optimizer, the run
    folder relative to ``runs``, and the wall time since ``started``."""
    root = Path(__file__).resolve().parents[1]  # the nestbench checkout that ran (its commit is the code)
    return {
        "experiment": name,
        "run_id": run_dir.name,
        "run_dir": portable_path(run_dir, root=runs),
        "spec": portable_path(spec.path),
        "overrides": list(spec.overrides),
        "config_hash": config_hash(spec.operative_config),
        "seed": seed,
        "git": git_state(root),
        "packages": package_versions(),
        "wall_seconds": round(time.time() - started, 2),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "optimizer": asdict(optimizer),
    }
