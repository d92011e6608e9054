"""Speech recognition: NEST features -> CTC, or NeMo's hybrid CTC + RNN-T, -> text with case and punctuation.

The NEST card's MCV numbers come from NEST-XL fine-tuned with NeMo's hybrid loss (CTC and RNN-T heads on
one encoder, ``ctc_weight`` mixing them) and are WER on the raw strings: case and punctuation are part
of the transcript, so nothing is normalised before training or scoring unless the spec says so
(``normalize_text``). The head here: a projection and a few transformer layers over the encoder's frames
(optionally ``upsample``d, so a character vocabulary fits at 80 ms), a CTC output, and with
``loss = 'hybrid'`` an RNN-T prediction network and joint (``nestbench.modules.transducer``).

Tokenizer: SentencePiece BPE trained on the training transcripts (one multilingual vocabulary for every
language in the data, kept in the run folder), characters, or a ready SentencePiece model
(``tokenizer_path``, e.g. the one inside a NeMo checkpoint). Decoding: greedy with either head, or CTC
beam search with an optional KenLM model (``nestbench.modules.ctc``: flashlight-text, and why).

What training skips, and says so with a count (``<run>/tokenizer/skipped.json``): entries with an empty
transcript, and entries whose audio has fewer frames than their CTC label sequence needs (CTC cannot
align them). Evaluation skips nothing: an empty or too-short hypothesis is scored as deletions. Characters
a ready tokenizer cannot spell become its unknown token, counted in the same file.

Scoring (``nestbench.metrics.asr``, jiwer): corpus WER on the raw strings, WER after the basic
normaliser, CER, and the edit counts; ``predictions/<set>.jsonl`` holds ``{id, text, pred_text}`` lines
that ``nestbench score asr`` reads back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nestbench.commands import Arg, Verb
from nestbench.modules.ctc import CtcBeamDecoder, ctc_loss, ctc_targets, greedy_ctc, write_lexicon
from nestbench.modules.transducer import JointNetwork, PredictionNetwork, greedy_transducer, transducer_loss
from nestbench.provenance import short_hash
from nestbench.task import DataSplits, EncoderView, EvalSet, Example, KeyedOutputs, Metric, Stage, whole
from nestbench.text import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from nestbench.validation import NON_EMPTY, SEED, BindingError, at_least, between, checked, either, equal, greater

log = logging.getLogger(__name__)

BLANK = 0  # the tokenizers' pad id: no target contains it, so CTC and RNN-T use it as their blank


# --- data sources ------------------------------------------------------------------------------
class SpeechTextMiniData:
    """English sentences synthesised offline with espeak-ng (``nestbench.synth.speech_text_mini``): cased,
    punctuated transcripts (``text``) and German translations (``target_text``) of one derivation, test
    sentences unseen in training, voices disjoint between splits. Serves the ASR and AST quickstarts."""

    convention = {"dataset": "speech-text-mini"}

    @checked(n_train=at_least(1), n_dev=at_least(1), n_test=at_least(1), seed=SEED)
    def __init__(self, n_train: int = 3000, n_dev: int = 200, n_test: int = 300, seed: int = 0):
        from nestbench.synth.speech_text_mini import SpeechTextMiniConfig

        self.config = SpeechTextMiniConfig(n_train=n_train, n_dev=n_dev, n_test=n_test, seed=seed)

    def missing(self) -> list[str]:
        return []

    def prepare(self, work_dir: Path) -> DataSplits:
        from nestbench.synth.speech_text_mini import make_speech_text_mini

        corpus = make_speech_text_mini(
            Path(work_dir) / f"speech_text_mini-{short_hash(asdict(self.config))}", self.config
        )
        info = {"corpus": "speech-text-mini", "language": "en", "language_pair": "en-de"}
        return DataSplits(
            train=(corpus.manifest("train"),),
            dev=EvalSet("dev", corpus.manifest("dev"), {}, info),
            tests=(EvalSet("test", corpus.manifest("test"), {}, info),),
        )


# --- data sources ------------------------------------------------------------------------------
class CommonVoiceData:
    """Mozilla Common Voice (the card: 16.1) through lhotse's ``commonvoice`` recipe: one training set over
    ``languages``, one pooled dev set, one test set per language (``mcv_en``, ``mcv_de`` ...).

    Transcripts are CV's ``sentence`` as released (cased, punctuated); the entries carry ``lang``."""

    convention = {"dataset": "mcv-16.1"}

    @checked(corpus_dir=NON_EMPTY, languages=NON_EMPTY)
    def __init__(self, corpus_dir: str, languages: tuple[str, ...] = ("en", "de", "es", "fr"), num_jobs: int = 4):
        self.corpus_dir, self.languages, self.num_jobs = Path(corpus_dir).expanduser(), tuple(languages), num_jobs

    def missing(self) -> list[str]:
        problems = []
        for lang in self.languages:
            folder = self.corpus_dir / lang
            lacking = [f for f in ("train.tsv", "dev.tsv", "test.tsv", "clips") if not (folder / f).exists()]
            if lacking:
                problems.append(
                    f"Common Voice '{lang}' not found under {folder} (missing {', '.join(lacking)}): download the "
                    "release (16.1 for the card: cv-corpus-16.1-2023-12-06) from https://commonvoice.mozilla.org/"
                    "en/datasets after accepting its terms (there is no unauthenticated link) and unpack it so that "
                    f"{folder}/train.tsv exists"
                )
        return problems

    def prepare(self, work_dir: Path) -> DataSplits:
        from lhotse.recipes import prepare_commonvoice

        out = Path(work_dir) / f"commonvoice-{short_hash([str(self.corpus_dir), self.languages])}"
        manifests = prepare_commonvoice(self.corpus_dir, out / "lhotse", self.languages, num_jobs=self.num_jobs)
        sets = {}
        for split in ("train", "dev", "test"):
            for lang in self.languages:
                m = manifests[lang][split]
                entries = _supervised_entries(m["recordings"], m["supervisions"], lang)
                name = f"mcv_{lang}" if split == "test" else split
                sets.setdefault(name, []).extend(entries)
        paths = {name: write_manifest(out / f"{name}.jsonl", entries) for name, entries in sets.items()}
        tests = tuple(EvalSet(f"mcv_{x}", paths[f"mcv_{x}"], {}, {"language": x}) for x in self.languages)
        return DataSplits(
            train=(paths["train"],),
            dev=EvalSet("dev", paths["dev"], {}, {"languages": list(self.languages)}),
            tests=tests,
        )


def _supervised_entries(recordings, supervisions, lang: str) -> list[dict]:
    """One NeMo manifest line per supervision (Common Voice: one per clip)."""
    out = []
    for sup in supervisions:
        rec = recordings[sup.recording_id]
        out.append(
            {
                "audio_filepath": rec.sources[0].source,
                "offset": sup.start,
                "duration": sup.duration,
                "id": sup.id,
                "text": sup.text or "",
                "lang": lang,
            }
        )
    return out


def write_manifest(path: Path, entries: Sequence[dict]) -> Path:
    from nestbench.fileio import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    return path


# --- the head -----------------------------------------------------------------------------------
class AsrHead(nn.Module):
    """features [B, T, D] -> states [B, T * upsample, d_model] -> CTC logits; RNN-T prediction and joint
    networks beside them when the loss is hybrid."""

    def __init__(
        self,
        feature_dim: int,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        upsample: int,
        hybrid: bool,
        pred_dim: int,
        joint_dim: int,
    ):
        super().__init__()
        self.upsample = upsample
        self.proj = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, d_model * upsample))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False) if n_layers else None
        self.norm = nn.LayerNorm(d_model)
        self.ctc = nn.Linear(d_model, vocab_size)
        if hybrid:
            self.prediction = PredictionNetwork(vocab_size, pred_dim, blank=BLANK)
            self.joint = JointNetwork(d_model, pred_dim, joint_dim, vocab_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States [B, T', d_model] and their lengths [B] (T' = T * upsample)."""
        b, t, _ = features.shape
        x = self.proj(features).reshape(b, t * self.upsample, -1)  # each frame becomes `upsample` frames
        lengths = lengths * self.upsample
        if self.layers is not None:
            pad = torch.arange(x.shape[1], device=x.device)[None] >= lengths[:, None]
            x = self.layers(x, src_key_padding_mask=pad)
        return self.norm(x), lengths


# --- the evaluator ------------------------------------------------------------------------------
class TranscriptEvaluator(KeyedOutputs):
    """Hypotheses per utterance, scored corpus-level against the manifest's raw transcripts."""

    def __init__(self, references: dict[str, str]):
        super().__init__()
        self.references = references

    def hypotheses(self) -> dict[str, str]:
        return {k: texts[0] for k, texts in self.by_key().items()}

    def compute(self) -> dict[str, float]:
        from nestbench.metrics.asr import asr_scores

        hyps = self.hypotheses()
        refs = {k: self.references[k] for k in hyps}
        scores = {k: v for k, v in asr_scores(refs, hyps).items() if isinstance(v, int | float)}
        return {**scores, "baseline_wer_empty": asr_scores(refs, {k: "" for k in hyps})["wer"]}

    def write(self, stem: Path) -> list[Path]:
        from nestbench.fileio import write_text_atomic

        target = Path(stem).with_suffix(".jsonl")
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps({"id": k, "text": self.references[k], "pred_text": h}, ensure_ascii=False) + "\n"
            for k, h in sorted(self.hypotheses().items())
        ]
        write_text_atomic(target, "".join(lines))
        return [target]

    def table(self) -> tuple[list[str], list[list]]:
        return ["id", "reference", "prediction"], [
            [k, self.references[k], h] for k, h in sorted(self.hypotheses().items())
        ]


# --- the task -----------------------------------------------------------------------------------
class AsrTask:
    name = "asr"
    metrics = (Metric("wer", "min"), Metric("wer_normalized", "min"), Metric("cer", "min"))
    dev_loss = False  # checkpoints are selected on dev WER

    @checked(
        tokenizer=either(equal("bpe"), equal("char")),
        vocab_size=at_least(8),
        d_model=at_least(8),
        n_layers=at_least(0),
        n_heads=at_least(1),
        dropout=between(0, 1, high_open=True),
        upsample=at_least(1),
        loss=either(equal("ctc"), equal("hybrid")),
        ctc_weight=between(0, 1),
        pred_dim=at_least(8),
        joint_dim=at_least(8),
        decode_with=either(equal("ctc"), equal("rnnt")),
        beam_size=at_least(1),
        lm_weight=at_least(0),
        frame_shift=greater(0),
    )
    def __init__(
        self,
        tokenizer: str = "bpe",
        vocab_size: int = 1024,
        tokenizer_path: str | None = None,
        d_model: int = 256,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.1,
        upsample: int = 1,
        loss: str = "hybrid",
        ctc_weight: float = 0.3,
        pred_dim: int = 320,
        joint_dim: int = 320,
        decode_with: str = "ctc",
        beam_size: int = 1,
        lm_path: str | None = None,
        lm_weight: float = 0.5,
        word_score: float = 0.0,
        normalize_text: bool = False,
        text_field: str = "text",
        frame_shift: float = 0.08,
    ):
        if decode_with == "rnnt" and loss != "hybrid":
            raise BindingError(
                "decode_with = 'rnnt' needs the RNN-T head: AsrTask.loss = 'hybrid'",
                ["AsrTask.decode_with", "AsrTask.loss"],
            )
        if decode_with == "rnnt" and (beam_size > 1 or lm_path):
            raise BindingError(
                "beam search and LM fusion decode with the CTC head; RNN-T decoding is greedy here",
                ["AsrTask.decode_with", "AsrTask.beam_size", "AsrTask.lm_path"],
            )
        if d_model % n_heads:
            raise BindingError(
                f"AsrTask.d_model = {d_model} is not divisible by AsrTask.n_heads = {n_heads}",
                ["AsrTask.d_model", "AsrTask.n_heads"],
            )
        self.tokenizer_kind, self.vocab_size, self.tokenizer_path = tokenizer, vocab_size, tokenizer_path
        self.d_model, self.n_layers, self.n_heads, self.dropout, self.upsample = (
            d_model,
            n_layers,
            n_heads,
            dropout,
            upsample,
        )
        self.loss_kind, self.ctc_weight, self.pred_dim, self.joint_dim = loss, ctc_weight, pred_dim, joint_dim
        self.decode_with, self.beam_size = decode_with, beam_size
        self.lm_path, self.lm_weight, self.word_score = lm_path, lm_weight, word_score
        self.normalize_text, self.text_field, self.frame_shift = normalize_text, text_field, frame_shift
        self.tokenizer = None  # fitted by setup()
        self.skipped: set[str] = set()  # training entries setup() found unusable
        self._beam: CtcBeamDecoder | None = None

    # data
    def check_data(self, source) -> list[str]:
        problems = source.missing()
        for name, path in (("tokenizer_path", self.tokenizer_path), ("lm_path", self.lm_path)):
            if path and not Path(path).expanduser().is_file():
                problems.append(f"AsrTask.{name}: {path} does not exist")
        return problems

    def prepare_data(self, source, work_dir: Path) -> DataSplits:
        return source.prepare(Path(work_dir))

    def convention(self, source) -> dict:
        from nestbench.metrics.asr import NORMALIZER

        return {
            "scorer": "nestbench.metrics.asr (jiwer), corpus level: total edits / total reference words",
            "normalization": NORMALIZER if self.normalize_text else "none",
            "wer_normalized": NORMALIZER,
            "decoding": self._decoding(),
            "units": "fraction",
            **getattr(source, "convention", {}),
        }

    def _decoding(self) -> str:
        if self.decode_with == "rnnt":
            return "rnnt greedy"
        if self.beam_size == 1:
            return "ctc greedy"
        lm = f", KenLM {Path(self.lm_path).name} weight {self.lm_weight}" if self.lm_path else ""
        return f"ctc beam {self.beam_size} (flashlight-text){lm}"

    def text(self, entry: dict) -> str:
        """The transcript as trained on and scored: raw unless ``normalize_text``."""
        raw = entry.get(self.text_field)
        raw = raw if isinstance(raw, str) else ""
        if not self.normalize_text:
            return raw
        from nestbench.metrics.asr import normalize

        return normalize(raw)

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None:
        """Fit (or reload) the tokenizer on the training transcripts, then find what training must skip."""
        folder = Path(run_dir) / "tokenizer"
        folder.mkdir(parents=True, exist_ok=True)
        texts = [self.text(e) for e in train_entries]
        spoken = [t for t in texts if t.strip()]
        if not spoken:
            raise ValueError(f"no training entry has a non-empty '{self.text_field}'")
        self.tokenizer = self._fit_tokenizer(spoken, folder)
        self.skipped, report = self._unusable(train_entries, texts)
        (folder / "skipped.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if self.lm_path or self.beam_size > 1:
            self._beam = self._beam_decoder(spoken, folder)

    def _fit_tokenizer(self, texts: list[str], folder: Path):
        if self.tokenizer_path:
            return load_tokenizer(Path(self.tokenizer_path).expanduser())
        if self.tokenizer_kind == "char":
            path = folder / "asr_chars.json"
            if not path.exists():
                CharTokenizer.build(texts).save(path)
            return CharTokenizer.load(path)
        model = folder / "asr.model"
        if not model.exists():
            SentencePieceTokenizer.train(texts, folder / "asr", vocab_size=self.vocab_size, model_type="bpe")
        return SentencePieceTokenizer(model)

    def _unusable(self, entries: Sequence[dict], texts: list[str]) -> tuple[set[str], dict]:
        """Entries training skips (empty transcript; fewer frames than CTC needs) and unknown-token counts."""
        empty, short, unknown, unknown_chars = [], [], 0, {}
        for e, text in zip(entries, texts, strict=True):
            if not text.strip():
                empty.append(e["id"])
                continue
            ids = self.tokenizer.encode(text)
            n_unk = sum(i == self.tokenizer.unk_id for i in ids)
            if n_unk:
                unknown += n_unk
                for ch in {c for c in text if self.tokenizer.encode(c) == [self.tokenizer.unk_id]}:
                    unknown_chars[ch] = unknown_chars.get(ch, 0) + 1
            frames = int(float(e["duration"]) / self.frame_shift) * self.upsample
            if frames < ctc_frames_needed(ids):
                short.append(e["id"])
        for what, ids in (("an empty transcript", empty), ("fewer frames than their CTC labels need", short)):
            if ids:
                log.warning(
                    "training skips %d of %d entries with %s (e.g. %s)",
                    len(ids),
                    len(entries),
                    what,
                    ", ".join(ids[:3]),
                )
        if unknown:
            log.warning(
                "%d training tokens are the tokenizer's unknown token (characters %s)",
                unknown,
                "".join(sorted(unknown_chars)),
            )
        report = {
            "entries": len(entries),
            "empty_transcript": {"count": len(empty), "ids": empty},
            "too_short_for_ctc": {"count": len(short), "ids": short},
            "unknown_tokens": {"count": unknown, "characters": dict(sorted(unknown_chars.items()))},
        }
        return set(empty) | set(short), report

    def _beam_decoder(self, texts: list[str], folder: Path) -> CtcBeamDecoder:
        tok = self.tokenizer
        tokens = token_strings(tok)
        char = isinstance(tok, CharTokenizer)
        lexicon = None
        if self.lm_path:  # a word-level KenLM model: the beam spells the training words
            words = [w for t in texts for w in t.split()]
            spell = (lambda w: [*w, "|"]) if char else (lambda w: [tokens[i] for i in tok.encode(w)])
            lexicon = write_lexicon(words, spell, folder / "lexicon.txt")
        return CtcBeamDecoder(
            tokens,
            BLANK,
            self.beam_size,
            separator=" " if char else None,
            lm_path=self.lm_path,
            lm_weight=self.lm_weight,
            word_score=self.word_score,
            lexicon=lexicon,
        )

    def examples(self, entry: dict, stage: Stage) -> list[Example]:
        if stage == "train" and entry["id"] in self.skipped:
            return []
        return [whole(entry)]

    def make_target(self, example: Example) -> list[int]:
        return self._tok.encode(self.text(example.entry))

    def collate_targets(self, targets: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        tokens, lengths = ctc_targets(targets, BLANK)
        return {"tokens": tokens, "token_lengths": lengths}

    # model
    def build_head(self, encoder: EncoderView) -> AsrHead:
        if abs(encoder.frame_shift - self.frame_shift) > 1e-9:
            raise ValueError(
                f"AsrTask.frame_shift = {self.frame_shift} but the encoder's frames are {encoder.frame_shift} s "
                f"apart: bind AsrTask.frame_shift = {encoder.frame_shift}"
            )
        return AsrHead(
            encoder.feature_dim,
            self._tok.vocab_size,
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.dropout,
            self.upsample,
            self.loss_kind == "hybrid",
            self.pred_dim,
            self.joint_dim,
        )

    def loss(self, head: AsrHead, features, lengths, batch: dict) -> torch.Tensor:
        states, lengths = head(features, lengths)
        tokens, token_lengths = batch["tokens"].to(states.device), batch["token_lengths"].to(states.device)
        ctc = ctc_loss(head.ctc(states), lengths, tokens, token_lengths, BLANK)
        if self.loss_kind == "ctc":
            return ctc
        rnnt = transducer_loss(head.joint, head.prediction, states, lengths, tokens, token_lengths, BLANK)
        return self.ctc_weight * ctc + (1 - self.ctc_weight) * rnnt

    def infer(self, head: AsrHead, features, lengths, examples=None) -> list[str]:
        states, lengths = head(features, lengths)
        if self.decode_with == "rnnt":
            ids = greedy_transducer(head.joint, head.prediction, states, lengths, BLANK)
        else:
            log_probs = F.log_softmax(head.ctc(states).float(), -1)
            ids = self._beam(log_probs, lengths) if self._beam is not None else greedy_ctc(log_probs, lengths, BLANK)
        return [self._tok.decode(seq).strip() for seq in ids]

    # scoring
    def evaluator(self, eval_set: EvalSet, entries: Sequence[dict]) -> TranscriptEvaluator:
        return TranscriptEvaluator({e["id"]: self.text(e) for e in entries})

    @property
    def _tok(self):
        if self.tokenizer is None:
            raise RuntimeError("AsrTask.setup() must run before targets are made (it fits the tokenizer)")
        return self.tokenizer


def ctc_frames_needed(ids: Sequence[int]) -> int:
    """The fewest frames a CTC alignment of ``ids`` takes: one per label, plus a blank between repeats."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:], strict=False) if a == b)


def token_strings(tokenizer) -> list[str]:
    """Each id's string, specials included (what a beam decoder is told the vocabulary is)."""
    if isinstance(tokenizer, CharTokenizer):
        return ["<pad>", "<unk>", "<bos>", "<eos>", *tokenizer.symbols]
    return [tokenizer._sp.id_to_piece(i) for i in range(tokenizer.vocab_size)]


# --- command-line verbs (registered in tasks/__init__.py) -----------------------------------------
def _score(args) -> dict:
    from nestbench.metrics.asr import score_asr_files

    return score_asr_files(args.ref, args.hyp, allow_partial=args.allow_partial)


SCORE = Verb(
    "asr",
    "corpus WER on raw strings (case and punctuation kept), WER after a basic normaliser, and CER (jiwer)",
    (
        Arg(("--ref",), {"required": True, "help": "references: jsonl of {id, text} (or a NeMo manifest)"}),
        Arg(
            ("--hyp",),
            {
                "required": True,
                "help": "hypotheses: jsonl of {id, text}, or NeMo transcription output (pred_text wins over text); "
                "paired with --ref by id, never by line order",
            },
        ),
        Arg(("--allow-partial",), {"action": "store_true", "help": "score only the ids both files have"}),
    ),
    _score,
)
