"""Speaker diarization: NEST features -> per-frame activity of up to ``max_speakers`` -> RTTM, scored by DER.

A Sortformer-style adapter (Park et al., 2024, initialised from NEST-L for the card's numbers): the
encoder's 80 ms frames go through a few transformer layers and a sigmoid per output slot. Slots are
ordered by *arrival time*: slot 0 is whoever speaks first in the window. That order is what the sort
loss trains (binary cross-entropy against arrival-sorted targets); the permutation-invariant loss
(the best of all slot orders) is available too, and ``sort_loss_weight`` mixes them.

Sessions are long, so the model sees windows: ``train_window`` seconds with hop ``train_hop`` in
training, ``eval_window`` / ``eval_hop`` at evaluation. An evaluator keyed by session stitches the
windows back together (``nestbench.modules.activity.stitch``: slots matched to session speakers on
the frames windows share), binarizes with the post-processing parameters (onset/offset hysteresis,
median filter, minimum speech and silence durations: tunable on dev DER by ``nestbench sweep``),
writes one RTTM per set and scores it with ``nestbench.metrics.diarization`` (md-eval's DER: collar
per side, each speaker's own turns merged, times pooled over files). Every result also scores the
one-speaker baseline (all reference speech as one speaker) on the same sets.

Manifests hold one line per session: ``audio_filepath``, ``duration``, ``id`` (the RTTM file id) and
``turns`` (``[start, duration, speaker]``); the set's reference RTTM and UEM travel as
``EvalSet.references``. Data sources: ``DiarMiniData`` (conversations synthesised offline),
``Dihard3Data`` and ``CallhomeData`` (LDC corpora through lhotse's recipes), ``RttmData`` (your own
audio + RTTM).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nestbench.commands import Arg, Verb
from nestbench.metrics.diarization import DiarizationDataError, diarization_error, read_rttm, read_uem, write_rttm
from nestbench.modules.activity import PostProcessing, binarize, frame_activity, frame_labels, stitch, turns
from nestbench.modules.margin_softmax import aam_softmax_loss
from nestbench.provenance import short_hash
from nestbench.task import DataSplits, EncoderView, EvalSet, Example, KeyedOutputs, Metric, Stage
from nestbench.validation import NON_EMPTY, SEED, BindingError, at_least, between, checked, greater

SPEAKER_DIM, SPEAKER_MARGIN, SPEAKER_SCALE = 128, 0.2, 30.0  # the auxiliary speaker loss (as the SV head's AAM)


# --- data sources ------------------------------------------------------------------------------
def session_manifest(rttm: Path, sessions: dict[str, tuple[str, float]], out: Path) -> Path:
    """One manifest line per session (``id -> (audio path, duration)``) with its reference turns."""
    from nestbench.fileio import write_text_atomic

    ref = read_rttm(rttm)
    lines = []
    for uri, (audio, duration) in sorted(sessions.items()):
        t = [[round(x.start, 3), round(x.duration, 3), x.speaker] for x in ref.get(uri, [])]
        speakers = sorted({x[2] for x in t})
        entry = {"audio_filepath": audio, "duration": duration, "id": uri, "turns": t, "num_speakers": len(speakers)}
        lines.append(json.dumps(entry) + "\n")
    write_text_atomic(out, "".join(lines))
    return out


class DiarMiniData:
    """Conversations synthesised offline with espeak-ng (``nestbench.synth.diar_mini``): 2-4 speakers per
    session, turn-taking with pauses and overlaps, background noise, voices disjoint between splits."""

    @checked(
        n_train_sessions=at_least(1),
        n_dev_sessions=at_least(1),
        n_test_sessions=at_least(1),
        n_train_speakers=at_least(4),
        n_dev_speakers=at_least(4),
        n_test_speakers=at_least(4),
        seed=SEED,
    )
    def __init__(
        self,
        n_train_sessions: int = 40,
        n_dev_sessions: int = 8,
        n_test_sessions: int = 12,
        n_train_speakers: int = 36,
        n_dev_speakers: int = 10,
        n_test_speakers: int = 14,
        min_session_s: float = 60.0,
        max_session_s: float = 180.0,
        seed: int = 0,
    ):
        from nestbench.synth.diar_mini import DiarMiniConfig

        self.config = DiarMiniConfig(
            n_train_sessions=n_train_sessions,
            n_dev_sessions=n_dev_sessions,
            n_test_sessions=n_test_sessions,
            n_train_speakers=n_train_speakers,
            n_dev_speakers=n_dev_speakers,
            n_test_speakers=n_test_speakers,
            min_session_s=min_session_s,
            max_session_s=max_session_s,
            seed=seed,
        )

    def missing(self) -> list[str]:
        return []

    def prepare(self, work_dir: Path) -> DataSplits:
        from nestbench.synth.diar_mini import make_diar_mini

        key = short_hash(asdict(self.config))
        corpus = make_diar_mini(Path(work_dir) / f"diar_mini-{key}", self.config)
        sessions_dir = Path(work_dir) / f"diar_mini-{key}-sessions"  # beside the corpus, which holds only its own files
        sessions_dir.mkdir(parents=True, exist_ok=True)
        out = {}
        for split in ("train", "dev", "test"):
            manifest = Path(corpus.manifest(split))
            sessions = {}
            for line in manifest.read_text(encoding="utf-8").splitlines():
                e = json.loads(line)
                sessions[e["id"]] = (str(manifest.parent / e["audio_filepath"]), e["duration"])
            path = session_manifest(Path(corpus.rttm(split)), sessions, sessions_dir / f"{split}.jsonl")
            refs = {"rttm": Path(corpus.rttm(split)), "uem": Path(corpus.uem(split))}
            out[split] = EvalSet(split, path, refs, {"corpus": "diar-mini", "uem": f"{split}.uem"})
        return DataSplits(train=(out["train"].manifest,), dev=out["dev"], tests=(out["test"],))


class RttmData:
    """Your own sessions: a folder of audio files per split and one RTTM (and optionally a UEM) per split.

    ``splits`` maps a set name to ``{'audio': folder, 'rttm': file, 'uem': file (optional)}``; ``train``
    and ``dev`` are required, every other name is a test set (``callhome_2spk``, ``my_meetings`` ...).
    Audio files are found by RTTM file id (``<id>.wav``/``.flac``/``.sph`` under the folder).
    """

    EXTENSIONS = (".wav", ".flac", ".sph")

    @checked(splits=NON_EMPTY)
    def __init__(self, splits: dict[str, dict[str, str]]):
        self.splits = {name: {k: Path(v).expanduser() for k, v in s.items()} for name, s in splits.items()}

    def missing(self) -> list[str]:
        problems = [f"RttmData needs a '{n}' split" for n in ("train", "dev") if n not in self.splits]
        for name, s in self.splits.items():
            for key in ("audio", "rttm"):
                if key not in s or not s[key].exists():
                    problems.append(f"set '{name}': {key} not found at {s.get(key)}")
            if "uem" in s and not s["uem"].is_file():
                problems.append(f"set '{name}': UEM not found at {s['uem']}")
        return problems

    def prepare(self, work_dir: Path) -> DataSplits:
        out = (
            Path(work_dir)
            / f"rttm-{short_hash({k: {a: str(b) for a, b in v.items()} for k, v in self.splits.items()})}"
        )
        out.mkdir(parents=True, exist_ok=True)
        sets = {}
        for name, s in self.splits.items():
            sessions = {uri: (str(self._audio(s["audio"], uri)), None) for uri in read_rttm(s["rttm"])}
            sessions = {uri: (a, _seconds(a)) for uri, (a, _) in sessions.items()}
            manifest = session_manifest(s["rttm"], sessions, out / f"{name}.jsonl")
            refs = {"rttm": s["rttm"], **({"uem": s["uem"]} if "uem" in s else {})}
            sets[name] = EvalSet(
                name, manifest, refs, {"rttm": s["rttm"].name, "uem": s["uem"].name if "uem" in s else "none"}
            )
        tests = tuple(v for k, v in sets.items() if k not in ("train", "dev"))
        return DataSplits(train=(sets["train"].manifest,), dev=sets["dev"], tests=tests)

    def _audio(self, folder: Path, uri: str) -> Path:
        for ext in self.EXTENSIONS:
            found = list(folder.rglob(f"{uri}{ext}"))
            if found:
                return found[0]
        raise DiarizationDataError(f"no audio for RTTM file id '{uri}' under {folder} ({', '.join(self.EXTENSIONS)})")


class CallhomeData:
    """CALLHOME as NIST SRE 2000 distributes it (LDC2001S97, *not* the LDC97S42 ASR corpus of that name),
    through lhotse's ``callhome_english`` recipe in its SRE mode, with the NIST key's ``fullref.rttm``.

    The part 1 / part 2 split is Kaldi's callhome_diarization recipe's, as listed per number of
    speakers in BUTSpeechFIT/CALLHOME_sublists (``part1/part1_<n>spks.txt``, ``part2/part2_<n>spks.txt``).
    Training: part 1 less a seeded ``dev_fraction`` held out for checkpoint selection (``dev``); tests:
    part 2 by number of speakers, one named set each (``callhome_2spk`` ...; ``test_speakers``).
    """

    @checked(audio_dir=NON_EMPTY, key_dir=NON_EMPTY, lists_dir=NON_EMPTY, dev_fraction=between(0, 1), seed=SEED)
    def __init__(
        self,
        audio_dir: str,
        key_dir: str,
        lists_dir: str,
        dev_fraction: float = 0.2,
        test_speakers: tuple[int, ...] = (2, 3, 4),
        seed: int = 0,
    ):
        self.audio_dir, self.key_dir = Path(audio_dir).expanduser(), Path(key_dir).expanduser()
        self.lists_dir = Path(lists_dir).expanduser()
        self.dev_fraction, self.test_speakers, self.seed = dev_fraction, tuple(test_speakers), seed

    def missing(self) -> list[str]:
        problems = []
        if not self.audio_dir.is_dir() or not any(self.audio_dir.rglob("*.sph")):
            problems.append(
                f"CALLHOME (NIST SRE 2000, LDC2001S97) audio not found under {self.audio_dir}: it is licensed by the "
                "LDC (https://catalog.ldc.upenn.edu/LDC2001S97) and cannot be downloaded by nestbench; put the "
                "unpacked release (its .sph files) there"
            )
        if not (self.key_dir / "fullref.rttm").is_file():
            problems.append(
                f"{self.key_dir}/fullref.rttm not found: download "
                "http://www.openslr.org/resources/10/sre2000-key.tar.gz and unpack it so that "
                f"{self.key_dir}/fullref.rttm exists"
            )
        for part in ("part1", "part2"):
            if not list((self.lists_dir / part).glob(f"{part}_*spks.txt")):
                problems.append(
                    f"{self.lists_dir}/{part}/{part}_<n>spks.txt not found: clone "
                    f"https://github.com/BUTSpeechFIT/CALLHOME_sublists into {self.lists_dir}"
                )
        return problems

    def prepare(self, work_dir: Path) -> DataSplits:
        from lhotse.recipes.callhome_english import prepare_callhome_english

        key = short_hash([str(self.audio_dir), str(self.key_dir), str(self.lists_dir), self.dev_fraction, self.seed])
        out = Path(work_dir) / f"callhome-{key}"
        out.mkdir(parents=True, exist_ok=True)
        manifests = prepare_callhome_english(self.audio_dir, rttm_dir=self.key_dir, absolute_paths=True)
        audio = {r.id: (str(r.sources[0].source), r.duration) for r in manifests["recordings"]}
        parts = {p: self._lists(p) for p in ("part1", "part2")}
        part1 = sorted(u for ids in parts["part1"].values() for u in ids)
        held = held_out(part1, self.dev_fraction, self.seed)
        groups = {"train": [u for u in part1 if u not in held], "dev": sorted(held)}
        groups |= {f"callhome_{n}spk": sorted(parts["part2"].get(n, [])) for n in self.test_speakers}
        ref = read_rttm(self.key_dir / "fullref.rttm")
        sets = {}
        for name, ids in groups.items():
            absent = [u for u in ids if u not in audio]
            if absent:
                raise DiarizationDataError(f"{name}: {len(absent)} listed recordings have no audio: {absent[:10]}")
            rttm = out / f"{name}.rttm"
            write_rttm(rttm, {u: ref.get(u, []) for u in ids})
            manifest = session_manifest(rttm, {u: audio[u] for u in ids}, out / f"{name}.jsonl")
            sets[name] = EvalSet(name, manifest, {"rttm": rttm}, {"corpus": "callhome-ldc2001s97", "uem": "none"})
        tests = tuple(sets[f"callhome_{n}spk"] for n in self.test_speakers)
        return DataSplits(train=(sets["train"].manifest,), dev=sets["dev"], tests=tests)

    def _lists(self, part: str) -> dict[int, list[str]]:
        found = {}
        for path in sorted((self.lists_dir / part).glob(f"{part}_*spks.txt")):
            n = int(path.stem.split("_")[1].removesuffix("spks"))
            found[n] = [x.strip() for x in path.read_text(encoding="utf-8").split() if x.strip()]
        return found


class Dihard3Data:
    """DIHARD III (LDC2022S12/S14: dev LDC2020E12, eval LDC2021E02) through lhotse's ``dihard3`` recipe.

    DIHARD III dev trains and selects (a seeded ``dev_fraction`` of its sessions held out as ``dev``);
    eval is the test set, whole (``dihard3_eval``) and restricted to sessions with at most
    ``max_test_speakers`` speakers (``dihard3_eval_le4spk``: the card's column). Scored with the
    official UEM (collar 0, overlap scored, as DIHARD III scores).
    """

    @checked(
        dev_dir=NON_EMPTY, eval_dir=NON_EMPTY, dev_fraction=between(0, 1), max_test_speakers=at_least(1), seed=SEED
    )
    def __init__(
        self, dev_dir: str, eval_dir: str, dev_fraction: float = 0.2, max_test_speakers: int = 4, seed: int = 0
    ):
        self.dev_dir, self.eval_dir = Path(dev_dir).expanduser(), Path(eval_dir).expanduser()
        self.dev_fraction, self.max_test_speakers, self.seed = dev_fraction, max_test_speakers, seed

    def missing(self) -> list[str]:
        return [
            f"DIHARD III {name} not found under {path} (no .flac): it is licensed by the LDC ({ldc}, "
            "https://dihardchallenge.github.io/dihard3/) and cannot be downloaded by nestbench; unpack it there"
            for name, path, ldc in (("dev", self.dev_dir, "LDC2020E12"), ("eval", self.eval_dir, "LDC2021E02"))
            if not path.is_dir() or not any(path.rglob("*.flac"))
        ]

    def prepare(self, work_dir: Path) -> DataSplits:
        from lhotse.recipes.dihard3 import prepare_dihard3

        out = (
            Path(work_dir)
            / f"dihard3-{short_hash([str(self.dev_dir), str(self.eval_dir), self.dev_fraction, self.seed])}"
        )
        out.mkdir(parents=True, exist_ok=True)
        manifests = prepare_dihard3(self.dev_dir, self.eval_dir, uem_manifest=True)
        sessions, refs, uems = {}, {}, {}
        for part, m in manifests.items():
            sessions[part] = {r.id: (str(r.sources[0].source), r.duration) for r in m["recordings"]}
            refs[part] = {u: [] for u in sessions[part]}
            for s in m["supervisions"]:
                refs[part][s.recording_id].append((s.start, s.duration, s.speaker))
            uems[part] = {u: [] for u in sessions[part]}
            for s in m["uem"]:
                uems[part][s.recording_id].append((s.start, s.start + s.duration))
        dev_ids = sorted(sessions["dev"])
        held = held_out(dev_ids, self.dev_fraction, self.seed)
        few = [u for u, ts in refs["eval"].items() if len({t[2] for t in ts}) <= self.max_test_speakers]
        groups = {
            "train": ("dev", [u for u in dev_ids if u not in held]),
            "dev": ("dev", sorted(held)),
            "dihard3_eval": ("eval", sorted(sessions["eval"])),
            f"dihard3_eval_le{self.max_test_speakers}spk": ("eval", sorted(few)),
        }
        sets = {}
        for name, (part, ids) in groups.items():
            rttm, uem = out / f"{name}.rttm", out / f"{name}.uem"
            write_rttm(rttm, {u: refs[part][u] for u in ids})
            _write_uem(uem, {u: uems[part][u] for u in ids})
            manifest = session_manifest(rttm, {u: sessions[part][u] for u in ids}, out / f"{name}.jsonl")
            sets[name] = EvalSet(name, manifest, {"rttm": rttm, "uem": uem}, {"corpus": "dihard3", "uem": "official"})
        tests = tuple(v for k, v in sets.items() if k.startswith("dihard3_eval"))
        return DataSplits(train=(sets["train"].manifest,), dev=sets["dev"], tests=tests)


def held_out(ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """A seeded ``fraction`` of ``ids`` (at least one) held out of training to select checkpoints."""
    rng = np.random.default_rng(seed)
    return set(rng.choice(list(ids), size=max(1, int(round(fraction * len(ids)))), replace=False).tolist())


def _write_uem(path: Path, segments: dict[str, list[tuple[float, float]]]) -> None:
    from nestbench.fileio import write_text_atomic

    lines = [f"{u} 1 {a:.3f} {b:.3f}\n" for u, segs in sorted(segments.items()) for a, b in sorted(segs)]
    write_text_atomic(path, "".join(lines))


def _seconds(path: str) -> float:
    from nestbench.audio import AudioReader

    return AudioReader().duration(path)


# --- the head and its losses ----------------------------------------------------------------------
class ActivityHead(nn.Module):
    """features [B, T, D] -> speech probability logits [B, T, max_speakers] (a few transformer layers).

    A sinusoidal position code is added before the layers (``positional``): arrival order is about
    *when*, and frozen features need not carry position. Without it the head is equivariant in time
    and, trained with the permutation-invariant loss alone, reads a whole session of any length in
    one window (SA-EEND's choice), so nothing needs stitching."""

    def __init__(
        self,
        feature_dim: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        max_speakers: int,
        dropout: float,
        positional: bool = True,
        n_speaker_classes: int = 0,
        conv_kernel: int = 0,
    ):
        super().__init__()
        self.positional = positional
        self.proj = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, d_model))
        # local context before the layers: attention without positions cannot look at its neighbours
        self.conv = (
            nn.Sequential(
                nn.LayerNorm(d_model),
                _Transpose(),
                nn.Conv1d(d_model, d_model, conv_kernel, padding=conv_kernel // 2),
                _Transpose(),
                nn.GELU(),
            )
            if conv_kernel
            else None
        )
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, max_speakers)
        if n_speaker_classes:  # the auxiliary speaker loss: a frame embedding and one weight per training speaker
            self.speaker_embed = nn.Linear(d_model, SPEAKER_DIM)
            self.speaker_weights = nn.Parameter(torch.randn(n_speaker_classes, SPEAKER_DIM) * 0.01)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(features, lengths))

    def hidden(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last layer's states [B, T, d_model] (speaker profiles for stitching are made from them)."""
        x = self.proj(features)
        pad = torch.arange(x.shape[1], device=x.device)[None] >= lengths[:, None]
        if self.conv is not None:
            x = x + self.conv(x.masked_fill(pad[..., None], 0.0)).masked_fill(pad[..., None], 0.0)
        if not self.positional:
            return self.layers(x, src_key_padding_mask=pad)
        t = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[:, None]
        freq = torch.exp(torch.arange(0, x.shape[2], 2, device=x.device, dtype=x.dtype) * (-math.log(1e4) / x.shape[2]))
        pos = torch.zeros_like(x[0])
        pos[:, 0::2], pos[:, 1::2] = torch.sin(t * freq), torch.cos(t * freq)[:, : pos[:, 1::2].shape[1]]
        return self.layers(x + pos, src_key_padding_mask=pad)


def speaker_loss(head: ActivityHead, states: torch.Tensor, frame_speaker: torch.Tensor) -> torch.Tensor:
    """AAM softmax over the training speakers on frames where exactly one speaker talks (EEND-VC's
    auxiliary): it makes the states the layers group frames by speaker-discriminative, which the
    activity loss alone learns slowly from a few dozen voices."""
    solo = frame_speaker >= 0
    if not solo.any():
        return states.sum() * 0.0
    emb = head.speaker_embed(states[solo].float())
    return aam_softmax_loss(emb, head.speaker_weights, frame_speaker[solo], SPEAKER_MARGIN, SPEAKER_SCALE)


class _Transpose(nn.Module):
    """[B, T, C] <-> [B, C, T] inside an nn.Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _frame_bce(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-example mean BCE over valid frames, for every (slot, target column) pair: [B, S, S]."""
    bce = F.binary_cross_entropy_with_logits(
        logits[:, :, :, None].expand(-1, -1, -1, targets.shape[2]),
        targets[:, :, None, :].expand(-1, -1, logits.shape[2], -1),
        reduction="none",
    )  # [B, T, S_slot, S_target]
    return (bce * valid[:, :, None, None]).sum(1) / valid.sum(1).clamp(min=1)[:, None, None]


def sort_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BCE against targets in arrival-time order (column 0 = first to speak): Sortformer's sort loss."""
    pair = _frame_bce(logits, targets, valid)
    return torch.diagonal(pair, dim1=1, dim2=2).mean()


def pit_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BCE under the best slot permutation, per example (permutation-invariant training)."""
    pair = _frame_bce(logits, targets, valid)  # [B, S, S]
    s = pair.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(s))), device=pair.device)  # [P, S]
    cost = pair[:, torch.arange(s, device=pair.device)[None], perms].mean(-1)  # [B, P]
    return cost.min(1).values.mean()


# --- the evaluator -------------------------------------------------------------------------------
def session_turns(windows: Sequence[tuple], duration: float, task: DiarizationTask) -> list[tuple[float, float, str]]:
    """A session's turns from its windows' ``(offset, probs, profiles)``: stitched, then post-processed."""
    fs = task.frame_shift
    probs = stitch(windows, fs, int(math.ceil(duration / fs)), min_similarity=task.stitch_similarity)
    return turns(binarize(probs, fs, task.post), fs)


class SessionEvaluator(KeyedOutputs):
    """Window probabilities per session, stitched, binarized, written as RTTM and scored by DER."""

    def __init__(self, eval_set: EvalSet, entries: Sequence[dict], task: DiarizationTask):
        super().__init__()
        self.name, self.task = eval_set.name, task
        self.durations = {e["id"]: float(e["duration"]) for e in entries}
        if "rttm" in eval_set.references:
            self.reference = read_rttm(eval_set.references["rttm"])
        else:
            self.reference = {e["id"]: [(t[0], t[1], t[2]) for t in e.get("turns", [])] for e in entries}
        self.reference = {uri: ts for uri, ts in self.reference.items() if uri in self.durations}
        self.uem = read_uem(eval_set.references["uem"]) if "uem" in eval_set.references else None
        self.uem_name = Path(eval_set.references["uem"]).name if self.uem is not None else None
        self._stitched: tuple[int, dict] | None = None

    def update(self, examples: Sequence[Example], outputs: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        super().update(examples, [(ex.offset, *out) for ex, out in zip(examples, outputs, strict=True)])

    def hypothesis(self) -> dict[str, list[tuple[float, float, str]]]:
        """Turns per session; stitched once for ``compute`` and ``write`` (again only after more updates)."""
        n = sum(len(v) for v in self.outputs.values())
        if self._stitched is None or self._stitched[0] != n:
            turns_ = {uri: session_turns(w, self.durations[uri], self.task) for uri, w in self.by_key().items()}
            self._stitched = (n, turns_)
        return self._stitched[1]

    def score(self, hypothesis: dict):
        t = self.task
        return diarization_error(
            self.reference,
            hypothesis,
            collar=t.collar,
            skip_overlap=t.skip_overlap,
            uem=self.uem,
            uem_name=self.uem_name,
        )

    def compute(self) -> dict[str, float]:
        t = self.task
        score = self.score(self.hypothesis())
        base = self.score({uri: [(s, d, "speech") for s, d, _ in ts] for uri, ts in self.reference.items()})
        over = sum(1 for ts in self.reference.values() if len({x[2] for x in ts}) > t.max_speakers)
        return {
            "der": score.der,
            "missed": score.missed,
            "false_alarm": score.false_alarm,
            "confusion": score.confusion,
            "baseline_der_one_speaker": base.der,
            "n_sessions": len(self.reference),
            "n_sessions_over_max_speakers": over,
        }

    def write(self, stem: Path) -> list[Path]:
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        hyp = self.hypothesis()
        rttm = stem.with_suffix(".rttm")
        write_rttm(rttm, hyp)
        score = self.score(hyp)
        per_file = stem.with_suffix(".der.json")
        per_file.write_text(json.dumps(score.as_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return [rttm, per_file]


# --- the task -----------------------------------------------------------------------------------
class DiarizationTask:
    name = "diar"
    metrics = (Metric("der", "min"), Metric("missed", "min"), Metric("false_alarm", "min"), Metric("confusion", "min"))
    dev_loss = False  # checkpoints are selected on dev DER

    @checked(
        max_speakers=between(1, 8),  # the permutation-invariant loss tries every slot order
        d_model=at_least(8),
        n_layers=at_least(1),
        n_heads=at_least(1),
        dropout=between(0, 1, high_open=True),
        sort_loss_weight=between(0, 1),
        train_window=greater(0),
        train_hop=greater(0),
        eval_window=greater(0),
        eval_hop=greater(0),
        collar=at_least(0),
        onset=between(0, 1),
        offset=between(0, 1),
        median_frames=at_least(1),
        min_duration_on=at_least(0),
        min_duration_off=at_least(0),
        frame_shift=greater(0),
        stitch_similarity=between(-1, 2),  # above 1: never join windows by profile alone
        speaker_loss_weight=at_least(0),
        conv_kernel=at_least(0),
    )
    def __init__(
        self,
        max_speakers: int = 4,
        d_model: int = 192,
        n_layers: int = 18,
        n_heads: int = 8,
        dropout: float = 0.1,
        sort_loss_weight: float = 0.5,
        train_window: float = 90.0,
        train_hop: float = 45.0,
        eval_window: float = 90.0,
        eval_hop: float = 45.0,
        collar: float = 0.0,
        skip_overlap: bool = False,
        onset: float = 0.5,
        offset: float = 0.5,
        median_frames: int = 1,
        min_duration_on: float = 0.0,
        min_duration_off: float = 0.0,
        frame_shift: float = 0.08,
        stitch_similarity: float = 0.8,
        positional: bool = True,
        speaker_loss_weight: float = 0.0,
        speaker_names_global: bool = False,
        conv_kernel: int = 0,
    ):
        if not positional and sort_loss_weight > 0:
            raise BindingError(
                "the sort loss orders slots by arrival time, which a head without positions cannot see: "
                "positional = False needs sort_loss_weight = 0",
                ["DiarizationTask.positional", "DiarizationTask.sort_loss_weight"],
            )
        if eval_hop > eval_window or train_hop > train_window:
            raise BindingError(
                "a window hop larger than the window leaves audio unseen (train_hop <= train_window, "
                "eval_hop <= eval_window)",
                ["DiarizationTask.train_hop", "DiarizationTask.eval_hop"],
            )
        self.max_speakers, self.d_model, self.n_layers, self.n_heads = max_speakers, d_model, n_layers, n_heads
        self.dropout, self.sort_loss_weight = dropout, sort_loss_weight
        self.train_window, self.train_hop, self.eval_window, self.eval_hop = (
            train_window,
            train_hop,
            eval_window,
            eval_hop,
        )
        self.collar, self.skip_overlap = collar, skip_overlap
        self.post = PostProcessing(onset, offset, median_frames, min_duration_on, min_duration_off)
        self.stitch_similarity, self.positional = stitch_similarity, positional
        self.speaker_loss_weight, self.speaker_names_global = speaker_loss_weight, speaker_names_global
        self.speaker_classes: dict[str, int] = {}  # set by setup() when the speaker loss is on
        self.conv_kernel = conv_kernel
        self.frame_shift = frame_shift  # labels are placed on the encoder's frame grid (80 ms for NEST)

    # data
    def check_data(self, source) -> list[str]:
        return source.missing()

    def prepare_data(self, source, work_dir: Path) -> DataSplits:
        return source.prepare(Path(work_dir))

    def convention(self, source) -> dict:
        return {
            "scorer": "nestbench.metrics.diarization (pyannote.metrics, md-eval conventions)",
            "collar_per_side": self.collar,
            "overlap_scored": not self.skip_overlap,
            "max_speakers": self.max_speakers,
            "post_processing": asdict(self.post),
            "positional": self.positional,
            "stitching": f"windows {self.eval_window} s, hop {self.eval_hop} s; slots joined by shared-frame "
            f"agreement or profile cosine >= {self.stitch_similarity}",
            "units": "fraction",
        }

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None:
        unlabelled = [e["_source"] for e in train_entries if not e.get("turns")]
        if len(unlabelled) == len(train_entries):
            raise DiarizationDataError(f"no training session has reference turns: {', '.join(unlabelled[:5])}")
        if self.speaker_loss_weight > 0:
            names = {self._speaker_class(e, t[2]) for e in train_entries for t in e.get("turns", [])}
            self.speaker_classes = {name: i for i, name in enumerate(sorted(names))}

    def _speaker_class(self, entry: dict, speaker: str) -> str:
        """The speaker loss's class name: RTTM names identify people across sessions only in some corpora
        (the synthetic one, VoxConverse); CALLHOME's A/B are per call, so by default a class is per session."""
        return speaker if self.speaker_names_global else f"{entry['id']}/{speaker}"

    def examples(self, entry: dict, stage: Stage) -> list[Example]:
        window, hop = (self.train_window, self.train_hop) if stage == "train" else (self.eval_window, self.eval_hop)
        duration = float(entry["duration"])
        n = 1 if duration <= window else 1 + math.ceil((duration - window) / hop)
        fs = self.frame_shift  # windows start on the encoder's frame grid, so cached frames and labels align
        starts = [round(round(min(i * hop, max(0.0, duration - window)) / fs) * fs, 6) for i in range(n)]
        return [Example(f"{entry['id']}#{i:05d}", entry["id"], entry, s, window) for i, s in enumerate(starts)]

    def make_target(self, example: Example) -> tuple[np.ndarray, np.ndarray] | None:
        """Activity labels [T, max_speakers] in arrival order, and per frame the speaker-loss class of the
        one speaker talking there (-1 for silence, overlap, or with the speaker loss off)."""
        if "turns" not in example.entry:
            return None
        turns_ = [tuple(t) for t in example.entry["turns"]]
        labels, _ = frame_labels(turns_, example.offset, example.seconds, self.frame_shift, self.max_speakers)
        solo = np.full(len(labels), -1, np.int64)
        if self.speaker_classes:
            active = frame_activity(turns_, example.offset, example.seconds, self.frame_shift)
            alone = sum(frames.astype(int) for frames in active.values()) == 1
            for name, frames in active.items():
                # speakers outside training (dev and test sets) have no class
                solo[frames & alone] = self.speaker_classes.get(self._speaker_class(example.entry, name), -1)
        return labels, solo

    def collate_targets(self, targets: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
        n = max(len(t) for t, _ in targets)
        activity = torch.zeros(len(targets), n, self.max_speakers)
        solo = torch.full((len(targets), n), -1, dtype=torch.long)
        for i, (t, s) in enumerate(targets):
            activity[i, : len(t)] = torch.from_numpy(t)
            solo[i, : len(s)] = torch.from_numpy(s)
        return {"activity": activity, "frame_speaker": solo}

    # model
    def build_head(self, encoder: EncoderView) -> nn.Module:
        if abs(encoder.frame_shift - self.frame_shift) > 1e-9:
            raise DiarizationDataError(
                f"DiarizationTask.frame_shift = {self.frame_shift} but the encoder's frames are "
                f"{encoder.frame_shift} s apart: bind DiarizationTask.frame_shift = {encoder.frame_shift}"
            )
        return ActivityHead(
            encoder.feature_dim,
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.max_speakers,
            self.dropout,
            self.positional,
            len(self.speaker_classes),
            self.conv_kernel,
        )

    def loss(self, head: ActivityHead, features, lengths, batch: dict) -> torch.Tensor:
        states = head.hidden(features, lengths)
        logits = head.out(states).float()
        targets = batch["activity"].to(logits.device)
        t = min(logits.shape[1], targets.shape[1])
        logits, targets = logits[:, :t], targets[:, :t]
        valid = (torch.arange(t, device=logits.device)[None] < lengths[:, None]).float()
        w = self.sort_loss_weight
        loss = 0.0
        if w > 0:
            loss = loss + w * sort_loss(logits, targets, valid)
        if w < 1:
            loss = loss + (1 - w) * pit_loss(logits, targets, valid)
        if self.speaker_loss_weight > 0:
            frame_speaker = batch["frame_speaker"].to(logits.device)[:, :t].masked_fill(valid == 0, -1)
            loss = loss + self.speaker_loss_weight * speaker_loss(head, states[:, :t], frame_speaker)
        return loss

    def infer(self, head: ActivityHead, features, lengths, examples=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per window: probabilities [T, S] and each slot's profile [S, E]: its activity-weighted mean state,
        in the speaker-embedding space when the head was trained with the speaker loss (EEND-VC's global
        linking of local speakers), else of the last layer."""
        states = head.hidden(features, lengths)
        probs = torch.sigmoid(head.out(states).float())
        if hasattr(head, "speaker_embed"):
            states = F.normalize(head.speaker_embed(states), dim=-1)
        valid = (torch.arange(probs.shape[1], device=probs.device)[None] < lengths[:, None]).float()[..., None]
        weights = probs * valid
        profiles = torch.einsum("bts,btd->bsd", weights, states.float()) / weights.sum(1).clamp(min=1e-6)[..., None]
        probs, profiles = probs.cpu().numpy(), profiles.cpu().numpy()
        return [(p[: int(n)], v) for p, v, n in zip(probs, profiles, lengths.tolist(), strict=True)]

    def evaluator(self, eval_set: EvalSet, entries: Sequence[dict]) -> SessionEvaluator:
        return SessionEvaluator(eval_set, entries, self)


# --- command-line verbs (registered in tasks/__init__.py) -----------------------------------------
def _score(args) -> dict:
    from nestbench.metrics.diarization import score_diar_files

    return score_diar_files(args.ref, args.hyp, collar=args.collar, uem=args.uem, skip_overlap=args.skip_overlap)


SCORE = Verb(
    "diar",
    "diarization error rate (md-eval/dscore definition) with missed, false alarm and confusion, overall and per file",
    (
        Arg(("--ref",), {"required": True, "help": "reference RTTM (its files are the ones scored)"}),
        Arg(("--hyp",), {"required": True, "help": "hypothesis RTTM; a reference file missing here is all missed"}),
        Arg(
            ("--collar",),
            {
                "type": float,
                "default": 0.0,
                "help": "no-score zone in seconds on EACH side of reference boundaries "
                "(md-eval/dscore; pyannote's collar is twice this). Default 0",
            },
        ),
        Arg(
            ("--uem",),
            {
                "default": None,
                "help": "UEM scoring regions 'uri channel start end' (default: each "
                "file from its first to its last turn)",
            },
        ),
        Arg(("--skip-overlap",), {"action": "store_true", "help": "do not score reference overlapped speech"}),
    ),
    _score,
)
