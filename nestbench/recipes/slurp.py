"""SLURP (Bastianelli et al., EMNLP 2020): the two recipe verbs, ``download_slurp`` and ``prepare_slurp``.

The corpus keeps SLURP's own layout, so a copy made with SLURP's ``scripts/download_audio.sh`` works too::

    <corpus>/dataset/slurp/{train,train_synthetic,devel,test}.jsonl   text annotations (GitHub, CC BY 4.0)
    <corpus>/audio/slurp_real/*.flac                                   real recordings (Zenodo, CC BY-NC 4.0)
    <corpus>/audio/slurp_synth/*.flac                                  synthetic recordings (train_synthetic)

``prepare_slurp`` writes, per split, a NeMo manifest with one line per recording file (the unit the
official scorer counts) and a gold annotation file restricted to exactly those recordings, so that
scoring a model's predictions for the manifest reports full coverage.

Usage::

    from nestbench.recipes.slurp import download_slurp, prepare_slurp
    corpus = download_slurp("~/data/slurp")                     # ~6 GB; reruns skip finished files
    manifests = prepare_slurp(corpus, "~/data/slurp/prepared", recordings="all")
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import soundfile as sf
from tqdm import tqdm

from nestbench.jsonl import iter_jsonl
from nestbench.metrics.slurp import gold_entities

from ..fileio import write_text_atomic

log = logging.getLogger(__name__)

SPLITS = ("train", "train_synthetic", "devel", "test")
# Annotations pinned to the commit the project's reference copy was taken from (files last changed 2020-11-12).
ANNOTATION_URL = (
    "https://raw.githubusercontent.com/pswietojanski/slurp/8eb16545762be97ace75334109d73824217311f1"
    "/dataset/slurp/{split}.jsonl"
)
# The archives SLURP's scripts/download_audio.sh fetches; each unpacks into a folder of the same name.
AUDIO_URLS = {
    "slurp_real": "https://zenodo.org/record/4274930/files/slurp_real.tar.gz",
    "slurp_synth": "https://zenodo.org/record/4274930/files/slurp_synth.tar.gz",
}
_MAX_ARCHIVE_MEMBERS = 500_000  # SLURP has ~72k real and ~69k synthetic recordings
_CHUNK = 1 << 20
_SHOWN = 5

Recordings = Literal["headset", "all"]
Missing = Literal["error", "skip"]


class SlurpDataError(ValueError):
    """The SLURP corpus on disk is incomplete or malformed; the message names the file (and line)."""


class SlurpDownloadError(RuntimeError):
    """Some SLURP files could not be downloaded; the message says where to put them by hand."""


# --- download ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remote:
    url: str
    dest: Path


def annotation_path(corpus_dir: str | os.PathLike[str], split: str) -> Path:
    return Path(corpus_dir).expanduser() / "dataset" / "slurp" / f"{split}.jsonl"


def _fetch(remote: _Remote, timeout: float) -> None:
    """Stream ``remote.url`` into ``remote.dest``, resuming a ``.part`` file left by an interrupted run."""
    part = remote.dest.with_name(remote.dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "nestbench"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(urllib.request.Request(remote.url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left past what we have: the part is complete
            os.replace(part, remote.dest)
            return
        raise
    with response:
        if offset and getattr(response, "status", None) != 206:
            offset = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        progress = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=remote.dest.name, disable=None)
        with open(part, "ab" if offset else "wb") as sink, progress:
            while block := response.read(_CHUNK):
                sink.write(block)
                progress.update(len(block))
    if total is not None and part.stat().st_size != total:
        raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes (rerun to resume)")
    os.replace(part, remote.dest)


def _extract(archive: Path, final: Path) -> None:
    """Unpack an audio archive path-safely into ``final``, which appears only once complete."""
    from nestbench.checkpoint.safe_tar import CheckpointError, safe_extract  # lazy: the package imports torch

    staging = final.with_name(f".{final.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)  # left by a run interrupted between the two renames
    try:
        safe_extract(archive, staging, max_members=_MAX_ARCHIVE_MEMBERS)
    except CheckpointError as err:
        raise SlurpDataError(f"cannot unpack {archive}: {err}; delete it and rerun to download it again") from err
    inner = staging / final.name  # the archives hold one top folder named like the archive
    os.replace(inner if inner.is_dir() else staging, final)
    shutil.rmtree(staging, ignore_errors=True)


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)  # "[Errno 111] Connection refused" rather than "<urlopen error ...>"
    return str(err)


def _manual_help(failures: list[tuple[_Remote, str]], target: Path) -> str:
    lines = [f"could not download {len(failures)} SLURP file(s):"]
    for remote, reason in failures:
        lines.append(f"  {remote.url}\n    -> {remote.dest}   ({reason})")
    lines += [
        "Download them by hand and place them as shown (audio archives may be unpacked instead, giving",
        f"{target}/audio/slurp_real/*.flac and {target}/audio/slurp_synth/*.flac), then rerun: finished files",
        "are skipped. The layout prepare_slurp expects:",
        f"  {target}/dataset/slurp/{{{','.join(SPLITS)}}}.jsonl",
        f"  {target}/audio/slurp_real/*.flac   (from slurp_real.tar.gz)",
        f"  {target}/audio/slurp_synth/*.flac  (from slurp_synth.tar.gz)",
    ]
    return "\n".join(lines)


def download_slurp(target_dir: str | os.PathLike[str], *, audio: bool = True, timeout: float = 60.0) -> Path:
    """Download SLURP's annotations (and, with ``audio``, its ~6 GB of audio) into ``target_dir``.

    Finished files are skipped and interrupted downloads resumed; archives are unpacked with
    path-safe extraction and kept beside their folder. Every failure is collected and reported
    together, with the URL and destination of each file, so it can be fetched by hand.
    """
    target = Path(target_dir).expanduser()
    remotes = [_Remote(ANNOTATION_URL.format(split=split), annotation_path(target, split)) for split in SPLITS]
    archives = {}
    if audio:
        for name, url in AUDIO_URLS.items():
            if not (target / "audio" / name).is_dir():
                archives[name] = _Remote(url, target / "audio" / f"{name}.tar.gz")
        remotes += archives.values()
    failures = []
    for remote in remotes:
        if remote.dest.is_file():
            log.info("already downloaded: %s", remote.dest)
            continue
        log.info("downloading %s", remote.url)
        try:
            _fetch(remote, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            failures.append((remote, _reason(err)))
    for name, remote in archives.items():
        if remote.dest.is_file():  # unpack what did arrive, so a rerun only fetches what failed
            log.info("unpacking %s", remote.dest)
            _extract(remote.dest, target / "audio" / name)
    if failures:
        raise SlurpDownloadError(_manual_help(failures, target))
    return target


# --- prepare -------------------------------------------------------------------------------------


def _find_annotations(corpus: Path, split: str) -> Path:
    candidates = [annotation_path(corpus, split), corpus / f"{split}.jsonl"]
    for path in candidates:
        if path.is_file():
            return path
    raise SlurpDataError(
        f"no annotation file for SLURP split {split!r}: looked for {candidates[0]} and {candidates[1]}. "
        f"Run `nestbench download slurp --to {corpus}` (download_slurp from Python) or copy "
        f"dataset/slurp/{split}.jsonl from github.com/pswietojanski/slurp"
    )


def _audio_dir(corpus: Path, split: str) -> Path:
    """SLURP's own ``audio/slurp_*`` or the folder unpacked straight into the corpus root."""
    name = "slurp_synth" if split == "train_synthetic" else "slurp_real"
    candidates = [corpus / "audio" / name, corpus / name]
    return next((path for path in candidates if path.is_dir()), candidates[0])


def _read_sentences(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for lineno, line, sentence in iter_jsonl(path, SlurpDataError):
        missing = [k for k in ("slurp_id", "sentence", "scenario", "action", "recordings") if k not in sentence]
        if missing:
            raise SlurpDataError(f"{path}:{lineno}: missing key(s) {missing}")
        yield lineno, line, sentence


def _keep(split: str, file: str, recordings: Recordings) -> bool:
    """Real recordings come in pairs, ``audio-N-headset.flac`` (close-talk) and ``audio-N.flac`` (far-field)."""
    return recordings == "all" or split == "train_synthetic" or Path(file).stem.endswith("-headset")


def _duration(path: Path, where: str) -> float:
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises RuntimeError/LibsndfileError for unreadable headers
        raise SlurpDataError(f"{where}: cannot read the audio header of {path} ({err})") from None
    return info.frames / info.samplerate


def semantics_text(scenario: str, action: str, entities: Sequence[dict[str, str]]) -> str:
    """The training target: the semantics as compact JSON, fillers lower-cased as the scorer's gold."""
    return json.dumps({"scenario": scenario, "action": action, "entities": list(entities)}, ensure_ascii=False)


def _prepare_split(
    corpus: Path, split: str, recordings: Recordings, missing: Missing
) -> tuple[list[dict[str, Any]], list[str]]:
    """Manifest entries and gold lines of one split."""
    annotations = _find_annotations(corpus, split)
    audio_dir = _audio_dir(corpus, split)
    entries, gold_lines, absent = [], [], []
    rows = list(_read_sentences(annotations))
    for lineno, raw, sentence in tqdm(rows, desc=f"slurp {split}", unit="sentence", disable=None):
        where = f"{annotations}:{lineno}"
        try:
            slots = [{"type": s.type, "filler": s.filler} for s in gold_entities(sentence, where)]
        except (KeyError, TypeError, AttributeError) as err:
            raise SlurpDataError(f"{where}: malformed tokens or entities ({err!r})") from None
        kept = []
        for recording in sentence["recordings"]:
            file = recording.get("file") if isinstance(recording, dict) else None
            if not isinstance(file, str):
                raise SlurpDataError(f"{where}: a recording without a 'file' name: {recording!r}")
            if not _keep(split, file, recordings):
                continue
            audio = (audio_dir / file).resolve()
            if not audio.is_file():
                absent.append(f"{where}: {file} (looked for {audio})")
                continue
            kept.append(recording)
            entries.append(
                {
                    "audio_filepath": str(audio),
                    "duration": _duration(audio, where),
                    "id": file,
                    "text": semantics_text(sentence["scenario"], sentence["action"], slots),
                    "scenario": sentence["scenario"],
                    "action": sentence["action"],
                    "entities": slots,
                    "slurp_id": sentence["slurp_id"],
                    "sentence": sentence["sentence"],
                }
            )
        if kept:
            same = len(kept) == len(sentence["recordings"])
            gold_lines.append(raw if same else json.dumps({**sentence, "recordings": kept}, ensure_ascii=False))
    if absent:
        shown = "\n  ".join(absent[:_SHOWN]) + (
            f"\n  ... and {len(absent) - _SHOWN} more" if len(absent) > _SHOWN else ""
        )
        if missing == "error":
            raise SlurpDataError(
                f"{len(absent)} recording(s) listed in {annotations} are not on disk:\n  {shown}\n"
                f"Unpack the SLURP audio there (`nestbench download slurp --to {corpus}`, download_slurp from "
                "Python), or leave them out: prepare_slurp(..., missing='skip') from Python."
            )
        log.warning(
            "SLURP %s: skipping %d recording(s) missing from %s, e.g.\n  %s", split, len(absent), audio_dir, shown
        )
    if not entries:
        raise SlurpDataError(f"{annotations}: no recordings left for split {split!r} (recordings={recordings!r})")
    log.info("SLURP %s: %d recordings (%s) from %d sentences", split, len(entries), recordings, len(gold_lines))
    return entries, gold_lines


def _write_if_changed(path: Path, text: str) -> None:
    """Atomic replace, skipped when the content is already there (reruns leave files and mtimes alone)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_text_atomic(path, text)


def gold_path(output_dir: str | os.PathLike[str], split: str) -> Path:
    """Where ``prepare_slurp`` writes a split's gold annotations (the ``--ref`` for scoring)."""
    return Path(output_dir).expanduser() / f"slurp_{split}_gold.jsonl"


def prepare_slurp(
    corpus_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] = SPLITS,
    recordings: Recordings = "headset",
    missing: Missing = "error",
) -> dict[str, Path]:
    """Write ``<output>/slurp_<split>.jsonl`` manifests and ``slurp_<split>_gold.jsonl``; return the manifests.

    ``recordings="headset"`` keeps the close-talk real recordings, ``"all"`` adds the far-field ones
    (published SLURP results score every recording); synthetic audio is always kept. A recording
    missing on disk is an error naming annotation file, line and path, or with ``missing="skip"``
    is left out of both files and counted in the log. Manifest ``id`` is the recording file name,
    the key predictions are scored by.
    """
    if recordings not in ("headset", "all"):
        raise ValueError(f"recordings must be 'headset' or 'all', not {recordings!r}")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown SLURP split(s) {unknown}; choose from {SPLITS}")
    corpus, out = Path(corpus_dir).expanduser(), Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    manifests = {}
    for split in splits:
        entries, gold_lines = _prepare_split(corpus, split, recordings, missing)
        manifest = out / f"slurp_{split}.jsonl"
        _write_if_changed(manifest, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
        _write_if_changed(gold_path(out, split), "".join(line + "\n" for line in gold_lines))
        manifests[split] = manifest
    return manifests
