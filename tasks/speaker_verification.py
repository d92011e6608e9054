"""Speaker verification: frozen NEST features -> speaker embeddings -> cosine scores on trial lists.

The NEST card's frozen-feature example (NeMo's ``speech_classification_mfa_train.py`` with
``nest_titanet_small.yaml``): the frozen encoder's layers are combined by learned softmax weights
(``EncoderSetup.mode = 'frozen'``, ``aggregation = 'superb'``), an ECAPA-like embedding model with
attentive statistics pooling turns the frames into one vector, and an additive angular margin
(AAM) softmax over the training speakers trains it on random fixed-length crops.

At evaluation the speakers are new: each utterance gets one embedding (the whole utterance, or the
mean of overlapping windows when it is longer than ``eval_window``), each trial ``1|0 enroll test``
is scored by cosine similarity, optionally with adaptive s-norm against a cohort of training
speakers, and the set is scored by EER and minDCF (``nestbench.metrics.verification``). Dev is a
trial list over held-out *training* speakers, so checkpoints are selected by dev EER; there is no
dev loss (dev speakers are not among the classes). Every evaluation also scores the same trials
with the cosine of mean log-mel vectors, the baseline printed beside the model.

Data sources: ``SvMiniData`` (speakers synthesised offline, for the quickstart) and
``VoxCelebData`` (VoxCeleb1/2 in their release layout with the official cleaned trial lists).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nestbench.commands import Arg, Verb
from nestbench.metrics.baselines import cosine_scores, mean_logmel_embeddings
from nestbench.metrics.verification import (
    CONVENTION,
    VerificationDataError,
    det_curve,
    plot_det,
    read_trials,
    verification_metrics,
)
from nestbench.modules.margin_softmax import aam_softmax_loss
from nestbench.provenance import short_hash
from nestbench.task import DataSplits, EncoderView, EvalSet, Example, KeyedOutputs, Metric, Stage
from nestbench.validation import NON_EMPTY, SEED, at_least, between, checked, greater

COHORT = "cohort"  # ``role`` of eval-manifest entries that are training speakers, for score normalisation


# --- data sources ------------------------------------------------------------------------------
class SvMiniData:
    """Speakers synthesised offline with espeak-ng (``nestbench.synth.sv_mini``): training, dev and test
    speakers disjoint; dev/test trial lists balanced; each eval manifest also lists ``cohort_per_speaker``
    utterances of every training speaker (``role: cohort``) for adaptive s-norm."""

    @checked(
        n_train_speakers=at_least(2),  # one speaker cannot train a verifier
        n_dev_speakers=at_least(2),
        n_test_speakers=at_least(2),
        utterances_per_speaker=at_least(2),  # target trials pair two utterances of one speaker
        n_dev_trials=at_least(2),
        n_test_trials=at_least(2),
        cohort_per_speaker=at_least(0),
        seed=SEED,
    )
    def __init__(
        self,
        n_train_speakers: int = 48,
        n_dev_speakers: int = 12,
        n_test_speakers: int = 16,
        utterances_per_speaker: int = 10,
        n_dev_trials: int = 1000,
        n_test_trials: int = 1400,
        cohort_per_speaker: int = 2,
        seed: int = 0,
    ):
        from nestbench.synth.sv_mini import SvMiniConfig

        self.config = SvMiniConfig(
            n_train_speakers=n_train_speakers,
            n_dev_speakers=n_dev_speakers,
            n_test_speakers=n_test_speakers,
            utterances_per_speaker=utterances_per_speaker,
            n_dev_trials=n_dev_trials,
            n_test_trials=n_test_trials,
            seed=seed,
        )
        self.cohort_per_speaker = cohort_per_speaker

    def missing(self) -> list[str]:
        return []

    def prepare(self, work_dir: Path) -> DataSplits:
        from nestbench.synth.sv_mini import make_sv_mini

        key = short_hash(asdict(self.config))
        corpus = make_sv_mini(Path(work_dir) / f"sv_mini-{key}", self.config)
        root = Path(corpus.root)
        cohort = _cohort(root / "train.jsonl", self.cohort_per_speaker)
        sets = []
        for name in ("dev", "test"):
            manifest = _with_cohort(root / f"{name}.jsonl", cohort, root / f"{name}_with_cohort.jsonl")
            sets.append(
                EvalSet(name, manifest, {"trials": root / f"{name}_trials.txt"}, {"trial_list": f"sv-mini-{name}"})
            )
        return DataSplits(train=(root / "train.jsonl",), dev=sets[0], tests=(sets[1],))


class VoxCelebData:
    """VoxCeleb in its release layout: ``voxceleb1_dir/wav/<speaker>/<video>/<n>.wav`` (+ ``vox1_meta.csv``)
    and optionally ``voxceleb2_dir/dev/aac/...``; trial lists in ``trials_dir`` under their official names
    (cleaned: ``veri_test2.txt`` = VoxCeleb1-O, ``list_test_all2.txt`` = -E, ``list_test_hard2.txt`` = -H).

    Training: VoxCeleb1 dev speakers (ids ``id1xxxx`` not in VoxCeleb1-O), or VoxCeleb2 dev through lhotse's
    ``voxceleb`` recipe. Dev: a balanced trial list over ``n_dev_speakers`` training speakers held out of
    training. Tests: ``voxceleb1_o`` always, ``voxceleb1_e`` / ``voxceleb1_h`` when their lists are present
    (they draw on VoxCeleb1 dev speakers, so train on VoxCeleb2 to report them).
    """

    LISTS = {"voxceleb1_o": "veri_test2.txt", "voxceleb1_e": "list_test_all2.txt", "voxceleb1_h": "list_test_hard2.txt"}

    @checked(
        voxceleb1_dir=NON_EMPTY,
        trials_dir=NON_EMPTY,
        n_dev_speakers=at_least(2),
        n_dev_trials=at_least(2),
        cohort_per_speaker=at_least(0),
        seed=SEED,
    )
    def __init__(
        self,
        voxceleb1_dir: str,
        trials_dir: str,
        voxceleb2_dir: str | None = None,
        train_on: Literal["voxceleb1_dev", "voxceleb2_dev"] = "voxceleb1_dev",
        n_dev_speakers: int = 40,
        n_dev_trials: int = 20000,
        cohort_per_speaker: int = 1,
        seed: int = 0,
    ):
        self.vox1, self.trials_dir = Path(voxceleb1_dir).expanduser(), Path(trials_dir).expanduser()
        self.vox2 = Path(voxceleb2_dir).expanduser() if voxceleb2_dir else None
        self.train_on, self.n_dev_speakers, self.n_dev_trials = train_on, n_dev_speakers, n_dev_trials
        self.cohort_per_speaker, self.seed = cohort_per_speaker, seed

    def missing(self) -> list[str]:
        problems = []
        if not (self.vox1 / "wav").is_dir():
            problems.append(
                f"VoxCeleb1 audio not found at {self.vox1}/wav/<speaker>/<video>/<n>.wav: request access and download "
                "vox1_dev_wav + vox1_test_wav from https://www.robots.ox.ac.uk/~vgg/data/voxceleb/ (or run lhotse's "
                f"`lhotse download voxceleb1 {self.vox1}`), and unpack both into {self.vox1}/wav/"
            )
        if not (self.trials_dir / self.LISTS["voxceleb1_o"]).is_file():
            problems.append(
                f"VoxCeleb1-O (cleaned) trial list not found: download veri_test2.txt (and optionally "
                f"list_test_all2.txt, list_test_hard2.txt) from https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/ "
                f"into {self.trials_dir}/"
            )
        if self.train_on == "voxceleb2_dev" and not (self.vox2 and self.vox2.is_dir()):
            problems.append(f"VoxCeleb2 dev not found at {self.vox2}: download it, or train_on = 'voxceleb1_dev'")
        return problems

    def prepare(self, work_dir: Path) -> DataSplits:
        out = (
            Path(work_dir)
            / f"voxceleb-{short_hash([str(self.vox1), str(self.vox2), self.train_on, self.n_dev_speakers, self.seed])}"
        )
        out.mkdir(parents=True, exist_ok=True)
        lists = {name: self.trials_dir / f for name, f in self.LISTS.items() if (self.trials_dir / f).is_file()}
        test_utts = sorted({u for path in lists.values() for t in read_trials(path) for u in (t.enroll, t.test)})
        test_speakers = {u.split("/")[0] for u in test_utts}
        if self.train_on == "voxceleb1_dev":
            train = [e for e in _scan_vox1(self.vox1 / "wav") if e["speaker"] not in test_speakers]
        else:
            train = _vox2_entries(self.vox2, out)
        rng = np.random.default_rng(self.seed)
        speakers = sorted({e["speaker"] for e in train})
        held = set(rng.choice(speakers, size=min(self.n_dev_speakers, len(speakers) // 10 or 1), replace=False))
        dev = [e for e in train if e["speaker"] in held]
        train = [e for e in train if e["speaker"] not in held]
        _write_jsonl(out / "train.jsonl", train)
        cohort = _cohort(out / "train.jsonl", self.cohort_per_speaker)
        _write_jsonl(out / "dev.jsonl", dev + cohort)
        _write_trials(out / "dev_trials.txt", balanced_trials(dev, self.n_dev_trials, self.seed))
        tests = []
        for name, path in lists.items():
            entries = [
                {"audio_filepath": str(self.vox1 / "wav" / u), "id": u, "speaker": u.split("/")[0]} for u in test_utts
            ]
            manifest = out / f"{name}.jsonl"
            _write_jsonl(manifest, entries + cohort)
            tests.append(EvalSet(name, manifest, {"trials": path}, {"trial_list": f"{name.replace('_', '-')}-cleaned"}))
        dev_set = EvalSet(
            "dev", out / "dev.jsonl", {"trials": out / "dev_trials.txt"}, {"trial_list": "held-out-train"}
        )
        return DataSplits(train=(out / "train.jsonl",), dev=dev_set, tests=tuple(tests))


def _scan_vox1(wav: Path) -> list[dict]:
    """VoxCeleb1's files as entries; ids are the paths the trial lists use (``id10270/x6uYqmx31kE/00001.wav``)."""
    return [
        {"audio_filepath": str(p), "id": p.relative_to(wav).as_posix(), "speaker": p.relative_to(wav).parts[0]}
        for p in sorted(wav.glob("id*/*/*.wav"))
    ]


def _vox2_entries(vox2: Path, out: Path) -> list[dict]:
    """VoxCeleb2 dev through lhotse's recipe (its m4a files are decoded by lhotse's audio backends)."""
    from lhotse import CutSet
    from lhotse.recipes.voxceleb import prepare_voxceleb

    manifests = prepare_voxceleb(voxceleb2_root=vox2, output_dir=out / "lhotse")
    cuts = CutSet.from_manifests(**manifests["train"])
    return [
        {"audio_filepath": c.recording.sources[0].source, "id": c.id, "speaker": c.supervisions[0].speaker}
        for c in cuts
    ]


def balanced_trials(entries: Sequence[dict], n: int, seed: int) -> list[tuple[int, str, str]]:
    """``n`` trials over ``entries``, half target and half non-target, no self-trials, no repeats."""
    rng = np.random.default_rng(seed)
    by_spk: dict[str, list[str]] = {}
    for e in entries:
        by_spk.setdefault(e["speaker"], []).append(e["id"])
    speakers = sorted(s for s, us in by_spk.items() if len(us) >= 2)
    everyone = sorted(by_spk)
    if not speakers or len(everyone) < 2:
        raise VerificationDataError("dev trials need two speakers, one of them with two utterances")
    trials: set[tuple[int, str, str]] = set()
    for _ in range(20 * n):
        if len(trials) >= n:
            break
        if len(trials) % 2 == 0:
            a, b = rng.choice(by_spk[speakers[rng.integers(len(speakers))]], 2, replace=False)
            trials.add((1, str(a), str(b)))
        else:
            s, t = rng.choice(everyone, 2, replace=False)
            trials.add((0, str(rng.choice(by_spk[s])), str(rng.choice(by_spk[t]))))
    return sorted(trials)


def _cohort(train_manifest: Path, per_speaker: int) -> list[dict]:
    """``per_speaker`` utterances of every training speaker, tagged ``role: cohort``."""
    if per_speaker <= 0:
        return []
    picked: dict[str, list[dict]] = {}
    base = train_manifest.parent
    for line in train_manifest.read_text(encoding="utf-8").splitlines():
        if line.strip():
            e = json.loads(line)
            if len(picked.setdefault(e["speaker"], [])) < per_speaker:
                path = Path(e["audio_filepath"])
                e["audio_filepath"] = str(path if path.is_absolute() else base / path)
                picked[e["speaker"]].append({**e, "id": f"{COHORT}/{e['id']}", "role": COHORT})
    return [e for es in picked.values() for e in es]


def _with_cohort(manifest: Path, cohort: list[dict], out: Path) -> Path:
    if not cohort:
        return manifest
    entries = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines() if x.strip()]
    for e in entries:
        path = Path(e["audio_filepath"])
        e["audio_filepath"] = str(path if path.is_absolute() else manifest.parent / path)
    _write_jsonl(out, entries + cohort)
    return out


def _write_jsonl(path: Path, entries: Sequence[dict]) -> None:
    from nestbench.fileio import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))


def _write_trials(path: Path, trials: Sequence[tuple[int, str, str]]) -> None:
    from nestbench.fileio import write_text_atomic

    write_text_atomic(path, "".join(f"{label} {a} {b}\n" for label, a, b in trials))


# --- the head ------------------------------------------------------------------------------------
class _SEBlock(nn.Module):
    """Squeeze-excitation over channels, averaged over valid frames only."""

    def __init__(self, channels: int, bottleneck: int = 64):
        super().__init__()
        self.down, self.up = nn.Linear(channels, bottleneck), nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return x * torch.sigmoid(self.up(F.relu(self.down(mean))))[..., None]


class _TdnnBlock(nn.Module):
    """Dilated 1-D convolution, batch norm, ReLU, squeeze-excitation, residual (ECAPA's SE-TDNN, without Res2)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation)
        self.norm = nn.BatchNorm1d(channels)
        self.se = _SEBlock(channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + self.se(F.relu(self.norm(self.conv(x * mask))), mask)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling with global context (ECAPA-TDNN): per-channel attention over valid
    frames, then the attention-weighted mean and standard deviation, concatenated."""

    def __init__(self, channels: int, attention: int = 128):
        super().__init__()
        self.attend = nn.Sequential(nn.Conv1d(3 * channels, attention, 1), nn.Tanh(), nn.Conv1d(attention, channels, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = mask.sum(-1, keepdim=True).clamp(min=1)
        mean = (x * mask).sum(-1, keepdim=True) / n
        std = (((x - mean) ** 2 * mask).sum(-1, keepdim=True) / n).clamp(min=1e-6).sqrt()
        context = torch.cat([x, mean.expand_as(x), std.expand_as(x)], 1)
        logits = self.attend(context).masked_fill(mask == 0, float("-inf"))
        w = torch.softmax(logits, -1)
        mu = (w * x).sum(-1)
        sigma = ((w * x * x).sum(-1) - mu * mu).clamp(min=1e-6).sqrt()
        return torch.cat([mu, sigma], 1)


class SpeakerEmbedder(nn.Module):
    """features [B, T, D] + frame lengths [B] -> embeddings [B, E]; ``classifier`` holds the AAM weights."""

    def __init__(self, feature_dim: int, channels: int, n_blocks: int, emb_dim: int, n_speakers: int, dropout: float):
        super().__init__()
        self.inp = nn.Sequential(nn.Conv1d(feature_dim, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU())
        self.blocks = nn.ModuleList(_TdnnBlock(channels, d) for d in [2, 3, 4, 2, 3, 4][:n_blocks])
        self.mfa = nn.Sequential(nn.Conv1d(channels * n_blocks, channels * 2, 1), nn.ReLU())
        self.pool = AttentiveStatsPool(channels * 2)
        self.norm = nn.BatchNorm1d(channels * 4)
        self.drop = nn.Dropout(dropout)
        self.embed = nn.Linear(channels * 4, emb_dim)
        self.classifier = nn.Parameter(torch.randn(n_speakers, emb_dim) * 0.01)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = features.transpose(1, 2)  # [B, D, T]
        mask = (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None]).to(x.dtype)[:, None]
        x = self.inp(x * mask)
        outs = []
        for block in self.blocks:
            x = block(x, mask)
            outs.append(x)
        x = self.mfa(torch.cat(outs, 1))
        return self.embed(self.drop(self.norm(self.pool(x, mask))))


# --- the evaluator -------------------------------------------------------------------------------
class TrialEvaluator(KeyedOutputs):
    """Embeddings per utterance (the mean of its windows), scored on the set's trial list."""

    def __init__(self, eval_set: EvalSet, entries: Sequence[dict], score_norm: str, cohort_top_k: int):
        super().__init__()
        self.name, self.score_norm, self.cohort_top_k = eval_set.name, score_norm, cohort_top_k
        if "trials" not in eval_set.references:
            raise VerificationDataError(f"evaluation set '{eval_set.name}' has no trial list (references['trials'])")
        self.trials_path = eval_set.references["trials"]
        self.trials = read_trials(self.trials_path)
        self.audio = {e["id"]: e["audio_filepath"] for e in entries if e.get("role") != COHORT}
        self.cohort_ids = [e["id"] for e in entries if e.get("role") == COHORT]
        self.pairs = [(resolve_id(t.enroll, self.audio), resolve_id(t.test, self.audio)) for t in self.trials]
        absent = sorted(
            {
                u
                for t, p in zip(self.trials, self.pairs, strict=True)
                for u, r in zip((t.enroll, t.test), p, strict=True)
                if r is None
            }
        )
        if absent:
            raise VerificationDataError(
                f"{self.trials_path}: {len(absent)} utterance(s) named by the trial list are not in the data of set "
                f"'{eval_set.name}': {', '.join(absent[:10])}" + (" ..." if len(absent) > 10 else "")
            )
        self.labels = np.array([t.label == 1 for t in self.trials])

    def embeddings(self) -> dict[str, np.ndarray]:
        out = {}
        for key, windows in self.by_key().items():
            v = np.mean(np.stack(windows), 0)
            out[key] = v / max(np.linalg.norm(v), 1e-12)
        return out

    def scores(self) -> np.ndarray:
        emb = self.embeddings()
        missing = sorted({u for pair in self.pairs for u in pair if u not in emb})
        if missing:
            raise VerificationDataError(
                f"set '{self.name}': no embedding for {missing[:10]} (was the whole set evaluated?)"
            )
        e = np.stack([emb[a] for a, _ in self.pairs])
        t = np.stack([emb[b] for _, b in self.pairs])
        raw = (e * t).sum(1)
        if self.score_norm == "none" or not self.cohort_ids:
            return raw
        cohort = np.stack([emb[c] for c in self.cohort_ids])
        return adaptive_snorm(raw, e, t, cohort, self.cohort_top_k)

    def compute(self) -> dict[str, float]:
        metrics = verification_metrics(self.scores(), self.labels)
        base = baseline_metrics(str(self.trials_path), tuple(sorted(self.audio.items())))
        return {**metrics, **{f"baseline_{k}": v for k, v in base.items() if k in ("eer", "min_dcf_0.01")}}

    def write(self, stem: Path) -> list[Path]:
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        scores = self.scores()
        score_file = stem.with_suffix(".scores.txt")
        score_file.write_text(
            "".join(f"{t.enroll} {t.test} {s:.6f}\n" for t, s in zip(self.trials, scores, strict=True)),
            encoding="utf-8",
        )
        base = _baseline_scores(str(self.trials_path), tuple(sorted(self.audio.items())))
        curves = {"model": det_curve(scores, self.labels)[:2], "mean log-mel cosine": det_curve(base, self.labels)[:2]}
        eers = {
            "model": verification_metrics(scores, self.labels)["eer"],
            "mean log-mel cosine": verification_metrics(base, self.labels)["eer"],
        }
        png = plot_det(stem.with_suffix(".det.png"), curves, eers, title=f"{self.name}: {Path(self.trials_path).name}")
        return [score_file, png]


def resolve_id(name: str, ids: dict[str, str]) -> str | None:
    """A trial-list token as a data id: the id itself, or the id with the audio suffix dropped."""
    if name in ids:
        return name
    stem = name.rsplit(".", 1)[0]
    return stem if stem in ids else None


def adaptive_snorm(raw, enroll, test, cohort, top_k: int) -> np.ndarray:
    """Adaptive symmetric score normalisation: each side normalised by the mean and standard deviation
    of its ``top_k`` highest cosine scores against the cohort, the two averaged."""
    k = max(1, min(top_k, len(cohort)))

    def stats(x):
        s = np.sort(x @ cohort.T, axis=1)[:, -k:]
        return s.mean(1), s.std(1) + 1e-6

    me, se = stats(enroll)
    mt, st = stats(test)
    return 0.5 * ((raw - me) / se + (raw - mt) / st)


@functools.lru_cache(maxsize=16)
def _baseline_scores(trials_path: str, audio: tuple[tuple[str, str], ...]) -> np.ndarray:
    """Cosine of mean log-mel vectors on the same trials (memoised: it does not depend on the model)."""
    ids = dict(audio)
    trials = read_trials(trials_path)
    pairs = [(resolve_id(t.enroll, ids), resolve_id(t.test, ids)) for t in trials]
    used = sorted({u for p in pairs for u in p})
    emb = mean_logmel_embeddings([(u, ids[u]) for u in used])
    return cosine_scores(emb, pairs)


def baseline_metrics(trials_path: str, audio: tuple[tuple[str, str], ...]) -> dict[str, float]:
    labels = np.array([t.label == 1 for t in read_trials(trials_path)])
    return verification_metrics(_baseline_scores(trials_path, audio), labels)


# --- the task -----------------------------------------------------------------------------------
class SpeakerVerificationTask:
    name = "sv"
    metrics = (Metric("eer", "min"), Metric("min_dcf_0.01", "min"), Metric("min_dcf_0.05", "min"))
    dev_loss = False  # dev speakers are not training classes: dev is scored by EER on its trials

    @checked(
        channels=at_least(1),
        n_blocks=between(1, 6),  # one dilation pattern of six blocks
        emb_dim=at_least(1),
        dropout=between(0, 1, high_open=True),
        aam_margin=between(0, 1, high_open=True),  # radians added to the true speaker's angle
        aam_scale=greater(0),
        train_crop=greater(0),
        eval_window=greater(0),
        cohort_top_k=at_least(1),
    )
    def __init__(
        self,
        channels: int = 512,
        n_blocks: int = 3,
        emb_dim: int = 192,
        dropout: float = 0.0,
        aam_margin: float = 0.2,
        aam_scale: float = 30.0,
        train_crop: float = 3.0,
        eval_window: float | None = 20.0,
        score_norm: Literal["none", "asnorm"] = "none",
        cohort_top_k: int = 200,
    ):
        self.channels, self.n_blocks, self.emb_dim, self.dropout = channels, n_blocks, emb_dim, dropout
        self.aam_margin, self.aam_scale = aam_margin, aam_scale
        self.train_crop, self.eval_window = train_crop, eval_window
        self.score_norm, self.cohort_top_k = score_norm, cohort_top_k
        self.speakers: dict[str, int] | None = None  # fitted by setup() on the training speakers

    # data
    def check_data(self, source) -> list[str]:
        return source.missing()

    def prepare_data(self, source, work_dir: Path) -> DataSplits:
        return source.prepare(Path(work_dir))

    def convention(self, source) -> dict:
        norm = "none" if self.score_norm == "none" else f"adaptive s-norm, top {self.cohort_top_k} cohort scores"
        return {
            "scorer": "nestbench.metrics.verification",
            **CONVENTION,
            "scoring": "cosine of utterance embeddings (mean of windows when longer than eval_window)",
            "score_norm": norm,
            "probe": "frozen NEST, softmax layer weights, ECAPA-like TDNN + attentive statistics pooling, AAM-softmax",
            "units": "fraction",
        }

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None:
        """The training speakers become classes (kept in the run folder); one speaker cannot train a verifier."""
        path = Path(run_dir) / "speakers.json"
        if path.exists():
            self.speakers = json.loads(path.read_text(encoding="utf-8"))
            return
        missing = [e["_source"] for e in train_entries if not e.get("speaker")]
        if missing:
            raise VerificationDataError(f"training entries need a 'speaker' field: {', '.join(missing[:5])}")
        names = sorted({str(e["speaker"]) for e in train_entries})
        if len(names) < 2:
            raise VerificationDataError(
                f"speaker verification needs at least two training speakers; the training data has {len(names)} "
                f"({', '.join(names)})"
            )
        self.speakers = {s: i for i, s in enumerate(names)}
        path.write_text(json.dumps(self.speakers, indent=1) + "\n", encoding="utf-8")

    def examples(self, entry: dict, stage: Stage) -> list[Example]:
        if stage == "train":
            return [Example(entry["id"], entry["id"], entry, crop=self.train_crop)]
        duration, window = entry["duration"], self.eval_window
        if window is None or duration <= window:
            return [Example(entry["id"], entry["id"], entry)]
        hop = window / 2
        n = 1 + math.ceil((duration - window) / hop)
        starts = [min(i * hop, duration - window) for i in range(n)]
        return [Example(f"{entry['id']}#{i:04d}", entry["id"], entry, s, window) for i, s in enumerate(starts)]

    def make_target(self, example: Example) -> int | None:
        if example.crop is None:  # evaluation: speakers unseen in training have no class
            return None
        return self._speakers[str(example.entry["speaker"])]

    def collate_targets(self, targets: Sequence[int]) -> dict[str, torch.Tensor]:
        return {"speaker": torch.tensor(list(targets), dtype=torch.long)}

    # model
    def build_head(self, encoder: EncoderView) -> nn.Module:
        return SpeakerEmbedder(
            encoder.feature_dim, self.channels, self.n_blocks, self.emb_dim, len(self._speakers), self.dropout
        )

    def loss(self, head: SpeakerEmbedder, features, lengths, batch: dict) -> torch.Tensor:
        emb = head(features, lengths)
        return aam_softmax_loss(emb, head.classifier, batch["speaker"], self.aam_margin, self.aam_scale)

    def infer(self, head: SpeakerEmbedder, features, lengths, examples=None) -> list[np.ndarray]:
        return list(head(features, lengths).float().cpu().numpy())

    def evaluator(self, eval_set: EvalSet, entries: Sequence[dict]) -> TrialEvaluator:
        return TrialEvaluator(eval_set, entries, self.score_norm, self.cohort_top_k)

    @property
    def _speakers(self) -> dict[str, int]:
        if self.speakers is None:
            raise RuntimeError("SpeakerVerificationTask.setup() must run first (it maps training speakers to classes)")
        return self.speakers


# --- command-line verbs (registered in tasks/__init__.py) -----------------------------------------
def _score(args) -> dict:
    from nestbench.metrics.verification import score_sv_files

    return score_sv_files(args.trials, args.scores)


SCORE = Verb(
    "sv",
    "speaker verification EER and minDCF (P_tgt 0.01, 0.05) of a scores file on a trial list",
    (
        Arg(
            ("--trials",),
            {"required": True, "help": "trial list: '1|0 enroll test' (VoxCeleb) or 'enroll test target|nontarget'"},
        ),
        Arg(("--scores",), {"required": True, "help": "scores: 'enroll test score' per line, any order"}),
    ),
    _score,
)
