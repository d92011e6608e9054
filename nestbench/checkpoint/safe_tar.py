"""Validate-then-extract for untrusted tar archives (`.nemo` files are tars from the internet).

Every member is checked before a single byte is written, so a refused archive leaves no trace;
the accepted members are then written into a temporary sibling of the destination that is
renamed into place atomically, so readers never see a half-extracted folder.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("nestbench.checkpoint")

DEFAULT_MAX_TOTAL_BYTES = 32 * 1024**3
DEFAULT_MAX_MEMBERS = 10_000
_COPY_CHUNK = 1024 * 1024


class CheckpointError(Exception):
    """A checkpoint could not be found, read or trusted; the message always names the file."""


@dataclass(frozen=True)
class _Entry:
    """A validated member: its tar header and its normalised relative name."""

    info: tarfile.TarInfo
    name: str


def normalize_member_name(raw: str) -> str:
    """Return `raw` without empty and `.` components, or raise ValueError saying why it is unsafe.

    `..` is refused rather than resolved: no legitimate checkpoint needs it, and resolving it is
    exactly how traversal attacks slip through.
    """
    if raw.startswith("/"):
        raise ValueError("absolute path")
    if "\\" in raw:
        raise ValueError("backslash in name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("'..' path component")
    return "/".join(parts)


def _refuse(archive: Path, member: str, why: str) -> CheckpointError:
    return CheckpointError(f"refusing to extract {archive}: member {member!r} is unsafe ({why})")


def _validate(tar: tarfile.TarFile, archive: Path, max_total_bytes: int, max_members: int) -> list[_Entry]:
    """Check every member of `tar`; iterating (not `getmembers`) stops early on member-count bombs."""
    entries: list[_Entry] = []
    files: set[str] = set()
    dirs: set[str] = set()
    total = 0
    for count, info in enumerate(tar, start=1):
        if count > max_members:
            raise CheckpointError(f"refusing to extract {archive}: more than {max_members} members")
        try:
            name = normalize_member_name(info.name)
        except ValueError as exc:
            raise _refuse(archive, info.name, str(exc)) from None
        if info.issym() or info.islnk():
            kind = "symlink" if info.issym() else "hardlink"
            raise _refuse(archive, info.name, f"{kind} to {info.linkname!r}; links are not allowed")
        if not (info.isreg() or info.isdir()):
            raise _refuse(archive, info.name, "not a regular file or directory")
        if info.isdir():
            if name in files:
                raise _refuse(archive, info.name, "directory shadows a file of the same name")
            dirs.add(name)
        else:
            if not name:
                raise _refuse(archive, info.name, "file with an empty name")
            if name in files or name in dirs:
                raise _refuse(archive, info.name, "name appears twice")
            parents = name.split("/")[:-1]
            for depth in range(1, len(parents) + 1):
                if "/".join(parents[:depth]) in files:
                    raise _refuse(archive, info.name, "a parent directory is a file")
            total += info.size
            if total > max_total_bytes:
                raise _refuse(
                    archive, info.name, f"archive exceeds the {max_total_bytes}-byte uncompressed size budget"
                )
            files.add(name)
        entries.append(_Entry(info=info, name=name))
    return entries


def _select(entries: list[_Entry], archive: Path, members: Iterable[str] | None) -> list[_Entry]:
    """Pick the requested members, compared by normalised name so `./x` and `x` are the same file."""
    if members is None:
        return entries
    by_name = {entry.name: entry for entry in entries if entry.info.isreg()}
    wanted = [normalize_member_name(name) for name in members]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        present = sorted(by_name)
        raise CheckpointError(f"{archive} has no member(s) {missing}; it contains {present}")
    return [by_name[name] for name in wanted]


def _write(tar: tarfile.TarFile, entries: list[_Entry], root: Path) -> None:
    """Write `entries` under `root` with default permissions (tar modes and owners are ignored)."""
    root_resolved = root.resolve()
    for entry in entries:
        target = root / entry.name
        if not target.resolve().is_relative_to(root_resolved):  # belt and braces after validation
            raise CheckpointError(f"member {entry.info.name!r} escapes {root}")
        if entry.info.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(entry.info)
        if source is None:
            raise CheckpointError(f"member {entry.info.name!r} has no readable data")
        with source, open(target, "xb") as sink:
            shutil.copyfileobj(source, sink, _COPY_CHUNK)


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    *,
    members: Iterable[str] | None = None,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> None:
    """Validate every member of `archive`, then extract `members` (all when None) into `dest`.

    Only regular files and directories with relative, `..`-free names are accepted, within
    `max_total_bytes` of uncompressed data and `max_members` entries. `dest` must not exist yet;
    it appears atomically and complete. If another process creates `dest` first, its copy is kept
    and ours discarded, which is correct because cache destinations are content-addressed.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"extraction destination already exists: {dest}")
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            selected = _select(_validate(tar, archive, max_total_bytes, max_members), archive, members)
            _extract_atomically(tar, selected, dest)
    except (tarfile.TarError, OSError) as exc:  # CheckpointError from validation passes through untouched
        raise CheckpointError(f"cannot extract {archive} into {dest}: {exc}") from exc
    logger.debug("extracted %d member(s) of %s into %s", len(selected), archive, dest)


def _extract_atomically(tar: tarfile.TarFile, entries: list[_Entry], dest: Path) -> None:
    """Write into a hidden sibling of `dest`, then rename it into place; leftovers are always removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        _write(tar, entries, staging)
        _publish(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, dest: Path) -> None:
    """Rename `staging` to `dest`; losing the race to an identical copy is fine."""
    try:
        os.replace(staging, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and dest.is_dir():
            logger.debug("%s was extracted concurrently by another process; keeping that copy", dest)
            return
        raise
