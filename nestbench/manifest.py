"""NeMo JSONL manifests: one JSON object per line with ``audio_filepath`` (+ duration, offset, text, ...).

Relative audio paths are resolved against the manifest's folder (as NeMo does when the file
exists there), and every error names the manifest file and line.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jsonl import iter_jsonl


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class ManifestEntry:
    audio_filepath: Path
    line: int
    duration: float | None = None
    offset: float = 0.0
    utt_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def read_manifest(path: str | Path, *, check_audio: bool = True) -> list[ManifestEntry]:
    """Parse and validate a NeMo JSONL manifest or a lhotse CutSet manifest (``.jsonl``/``.jsonl.gz``).

    With ``check_audio`` a missing audio file is an error before any work.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    if is_lhotse_manifest(path):
        return read_lhotse_cuts(path, check_audio=check_audio)
    entries, missing = [], []
    for lineno, _line, item in iter_jsonl(path, ManifestError):
        if "audio_filepath" not in item:
            raise ManifestError(f"{path}:{lineno}: entry has no 'audio_filepath' key")
        audio = resolve_audio_path(item["audio_filepath"], path)
        if check_audio and not audio.is_file():
            missing.append(f"{path}:{lineno}: {item['audio_filepath']} (looked for {audio})")
        utt = item.get("id", item.get("utt_id"))
        entries.append(
            ManifestEntry(
                audio_filepath=audio,
                line=lineno,
                duration=_float_or_none(item.get("duration"), path, lineno, "duration"),
                offset=_float_or_none(item.get("offset"), path, lineno, "offset") or 0.0,
                utt_id=None if utt is None else str(utt),
                fields=item,
            )
        )
    if missing:
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ManifestError(
            f"{len(missing)} audio file(s) listed in {path} do not exist:\n  " + "\n  ".join(missing[:10]) + more
        )
    if not entries:
        raise ManifestError(f"{path}: manifest has no entries")
    return entries


def is_lhotse_manifest(path: Path) -> bool:
    """lhotse cuts carry ``recording`` + ``supervisions`` (and usually ``type: MonoCut``) on each line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(first, dict) and "recording" in first and "supervisions" in first
    return False


def read_lhotse_cuts(path: Path, *, check_audio: bool = True) -> list[ManifestEntry]:
    """lhotse CutSet -> entries: one per cut (file-backed mono recordings); supervision ``text`` and
    ``custom`` fields become entry fields, so tasks read them exactly as from a NeMo manifest."""
    try:
        from lhotse import load_manifest
    except ImportError:
        raise ManifestError(f"{path} is a lhotse manifest: pip install lhotse (or nestbench[lhotse])") from None
    entries, missing = [], []
    for n, cut in enumerate(load_manifest(path), start=1):
        rec = cut.recording
        if rec is None or len(rec.sources) != 1 or rec.sources[0].type != "file":
            raise ManifestError(f"{path}: cut {cut.id}: only cuts of one file-backed recording are supported")
        audio = resolve_audio_path(rec.sources[0].source, path)
        if check_audio and not audio.is_file():
            missing.append(f"{path}: cut {cut.id}: {audio}")
        fields: dict[str, Any] = {"id": cut.id, "duration": cut.duration, "offset": cut.start}
        for sup in cut.supervisions[:1]:  # one-utterance cuts: the supervision's fields are the entry's
            if sup.text is not None:
                fields["text"] = sup.text
            if sup.speaker is not None:
                fields["speaker"] = sup.speaker
            if sup.language is not None:
                fields["language"] = sup.language
            fields.update(sup.custom or {})
        # every supervision (speaker turns of a session), times relative to the cut's start
        fields["supervisions"] = [_supervision_fields(sup) for sup in cut.supervisions]
        fields.update(cut.custom or {})
        entries.append(ManifestEntry(audio, n, cut.duration, cut.start, cut.id, fields))
    if missing:
        raise ManifestError(
            f"{len(missing)} audio file(s) listed in {path} do not exist:\n  " + "\n  ".join(missing[:10])
        )
    if not entries:
        raise ManifestError(f"{path}: manifest has no cuts")
    return entries


def _supervision_fields(sup) -> dict[str, Any]:
    out = {"id": sup.id, "start": float(sup.start), "duration": float(sup.duration)}
    for key in ("speaker", "text", "language"):
        if getattr(sup, key) is not None:
            out[key] = getattr(sup, key)
    return out


def nemo_to_cuts(path: str | Path):
    """A NeMo JSONL manifest as a lhotse ``CutSet``: one recording per audio file, one cut per line
    (its ``offset``/``duration`` span), one supervision carrying ``text``/``speaker``/``lang`` and the
    other fields as ``custom``. Ids are the entries' ids (``nestbench.data.default_id`` otherwise)."""
    from lhotse import CutSet, Recording, SupervisionSegment
    from lhotse.cut import MonoCut

    from .data import default_id

    path = Path(path)
    recordings: dict[Path, Recording] = {}
    cuts = []
    for e in read_manifest(path):
        if e.audio_filepath not in recordings:
            rec_id = default_id(e.audio_filepath, path.parent, 0.0, None)
            recordings[e.audio_filepath] = Recording.from_file(e.audio_filepath, recording_id=rec_id)
        rec = recordings[e.audio_filepath]
        duration = e.duration if e.duration is not None else rec.duration - e.offset
        cut_id = e.utt_id or default_id(e.audio_filepath, path.parent, e.offset, e.duration)
        known = {"audio_filepath", "duration", "offset", "id", "utt_id", "text", "speaker", "lang", "language"}
        custom = {k: v for k, v in e.fields.items() if k not in known} or None
        sup = SupervisionSegment(
            id=cut_id,
            recording_id=rec.id,
            start=0.0,  # supervisions inside a cut are timed from the cut's start
            duration=duration,
            channel=0,
            text=e.fields.get("text"),
            speaker=e.fields.get("speaker"),
            language=e.fields.get("lang", e.fields.get("language")),
            custom=custom,
        )
        cuts.append(MonoCut(id=cut_id, start=e.offset, duration=duration, channel=0, recording=rec, supervisions=[sup]))
    counts = Counter(c.id for c in cuts)
    dup = sorted(i for i, n in counts.items() if n > 1)
    if dup:
        raise ManifestError(f"{path}: ids used by more than one entry: {dup[:10]}")
    return CutSet.from_cuts(cuts)


def resolve_audio_path(value: str, manifest: Path) -> Path:
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    beside = manifest.parent / p
    return beside if beside.exists() or not p.exists() else p


def _float_or_none(value: Any, path: Path, lineno: int, key: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{path}:{lineno}: '{key}' must be a number, got {value!r}") from None
