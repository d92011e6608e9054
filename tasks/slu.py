"""Spoken language understanding on SLURP: intent (scenario + action) and slot filling.

The NeMo approach: the encoder's features feed a transformer decoder that *writes* the semantics
as text, decoded with beam search and parsed back into structure. The target text is

    ``alarm_set ; time : five am ; date : tomorrow``

intent first (one SentencePiece symbol per intent seen in training), then ``type : filler`` slots.
Scores are SLURP's official intent accuracy and SLU-F1 (``nestbench.metrics.slurp``), computed
per recording file on the headset recordings.

Data sources: ``SlurpData`` (the real corpus in SLURP's own layout) and ``MiniSlurpData`` (a
SLURP-format corpus synthesised offline for the quickstart). Both go through the same recipe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from nestbench.commands import Arg, Verb
from nestbench.metrics.slurp import SlotValue, SluPrediction, score_slurp, write_predictions
from nestbench.modules.beam_search import beam_search
from nestbench.modules.text_decoder import TextDecoderHead, sequence_loss, teacher_forcing_batch
from nestbench.provenance import short_hash
from nestbench.recipes.slurp import SPLITS, prepare_slurp
from nestbench.task import DataSplits, EncoderView, EvalSet, Example, KeyedOutputs, Metric, Stage, whole
from nestbench.text.tokenizer import SentencePieceTokenizer
from nestbench.validation import NON_EMPTY, SEED, BindingError, Rule, at_least, between, checked

INTENT_SEP, SLOT_SEP, FILLER_SEP = " ; ", " ; ", " : "


# --- data sources ------------------------------------------------------------------------------
class SlurpData:
    """The SLURP corpus in its own layout: ``<corpus_dir>/dataset/slurp/*.jsonl`` + ``audio/slurp_{real,synth}``."""

    @checked(
        corpus_dir=NON_EMPTY,
        train_splits=Rule(lambda v: len(v) > 0 and all(s in SPLITS[:2] for s in v), f"be some of {SPLITS[:2]}"),
    )
    def __init__(
        self,
        corpus_dir: str,
        train_splits: Sequence[str] = ("train", "train_synthetic"),
        train_recordings: Literal["headset", "all"] = "headset",
        eval_recordings: Literal["headset", "all"] = "all",
    ):
        self.corpus_dir = Path(corpus_dir).expanduser()
        self.train_splits = tuple(train_splits)
        self.train_recordings, self.eval_recordings = train_recordings, eval_recordings

    def missing(self) -> list[str]:
        root = self.corpus_dir
        needed = [root / "dataset" / "slurp" / f"{s}.jsonl" for s in (*self.train_splits, "devel", "test")]
        absent = [p for p in needed if not p.is_file()]
        audio = [root / "audio" / "slurp_real", root / "slurp_real"]
        problems = []
        if absent or not any(a.is_dir() for a in audio):
            problems.append(
                f"SLURP not found under {root}: run `nestbench download slurp --to {root}` (about 6 GB), or place "
                f"the annotation files at {root}/dataset/slurp/{{train,train_synthetic,devel,test}}.jsonl "
                f"(github.com/pswietojanski/slurp) and the audio from slurp_real.tar.gz / slurp_synth.tar.gz at "
                f"{root}/audio/slurp_real/ and {root}/audio/slurp_synth/"
                + (f"; missing: {', '.join(str(p) for p in absent)}" if absent else "")
            )
        return problems

    def prepare(self, work_dir: Path) -> DataSplits:
        """Training on ``train_recordings``; devel/test on ``eval_recordings`` — ``all`` by default, because
        SLURP's official evaluation (and the NEST card) scores every recording file of the test set."""
        train_out = Path(work_dir) / f"slurp-train-{self.train_recordings}"
        eval_out = Path(work_dir) / f"slurp-eval-{self.eval_recordings}"
        manifests = prepare_slurp(
            self.corpus_dir, train_out, splits=self.train_splits, recordings=self.train_recordings
        )
        manifests.update(
            prepare_slurp(self.corpus_dir, eval_out, splits=("devel", "test"), recordings=self.eval_recordings)
        )
        return _splits(manifests, self.train_splits, eval_out)


class MiniSlurpData:
    """A SLURP-format corpus synthesised offline with espeak-ng (disjoint train/test voices).

    It has headset recordings only, so every split is scored on all of its recordings."""

    eval_recordings = "all"

    @checked(n_train=at_least(1), n_devel=at_least(1), n_test=at_least(1), seed=SEED)
    def __init__(
        self,
        n_train: int = 720,
        n_devel: int = 160,
        n_test: int = 240,
        seed: int = 0,
        pitch_jitter: int = 0,
        rate_jitter: float = 0.0,
    ):
        from nestbench.synth.slurp_mini import MiniSlurpConfig

        self.config = MiniSlurpConfig(
            n_train=n_train,
            n_devel=n_devel,
            n_test=n_test,
            seed=seed,
            pitch_jitter=pitch_jitter,
            rate_jitter=rate_jitter,
        )

    def missing(self) -> list[str]:
        return []

    def prepare(self, work_dir: Path) -> DataSplits:
        from nestbench.synth.slurp_mini import make_mini_slurp

        key = short_hash(asdict(self.config))
        corpus = make_mini_slurp(Path(work_dir) / f"mini_slurp-{key}" / "corpus", self.config)
        out = corpus.parent / "prepared"
        manifests = prepare_slurp(corpus, out, splits=("train", "devel", "test"), recordings="all")
        return _splits(manifests, ("train",), out)


def _splits(manifests: dict[str, Path], train: Sequence[str], out: Path) -> DataSplits:
    """SLURP devel selects checkpoints (``dev``), SLURP test is the test set (``test``)."""
    return DataSplits(
        train=tuple(manifests[s] for s in train),
        dev=EvalSet("dev", manifests["devel"], {"gold": out / "slurp_devel_gold.jsonl"}),
        tests=(EvalSet("test", manifests["test"], {"gold": out / "slurp_test_gold.jsonl"}),),
    )


# --- semantics as text ---------------------------------------------------------------------------
def semantics_to_text(scenario: str, action: str, entities: Sequence[SlotValue]) -> str:
    parts = [f"{scenario}_{action}"] + [f"{e.type}{FILLER_SEP}{e.filler}" for e in entities]
    return SLOT_SEP.join(parts)


def text_to_semantics(file: str, text: str) -> SluPrediction:
    """Parse decoder output; malformed pieces are dropped (they then count as errors when scored)."""
    parts = [p.strip() for p in text.split(SLOT_SEP.strip())]
    intent = parts[0] if parts else ""
    scenario, _, action = intent.partition("_")
    slots = []
    for part in parts[1:]:
        slot_type, sep, filler = part.partition(FILLER_SEP.strip())
        if sep and slot_type.strip() and filler.strip():
            slots.append(SlotValue(slot_type.strip(), " ".join(filler.lower().split())))
    return SluPrediction(file=file, scenario=scenario, action=action, entities=tuple(slots))


def _entry_semantics(entry: dict) -> tuple[str, str, tuple[SlotValue, ...]]:
    ents = tuple(SlotValue(e["type"], e["filler"]) for e in entry.get("entities", []))
    return entry["scenario"], entry["action"], ents


# --- the evaluator ------------------------------------------------------------------------------
class SlurpEvaluator(KeyedOutputs):
    """Decoded semantics text per recording file, scored by SLURP's official definitions."""

    def __init__(self, references: dict[str, SluPrediction], majority: tuple[str, str] | None = None):
        super().__init__()
        self.references, self.majority = references, majority

    def predictions(self) -> dict[str, SluPrediction]:
        return {k: text_to_semantics(k, texts[0]) for k, texts in self.by_key().items()}

    def compute(self) -> dict[str, float]:
        preds = self.predictions()
        refs = {k: self.references[k] for k in preds}
        scores = score_slurp(refs, preds)
        if self.majority is not None:  # the trivial baseline beside the claim: every file gets the training majority
            scenario, action = self.majority
            guess = {k: SluPrediction(file=k, scenario=scenario, action=action, entities=()) for k in preds}
            scores["baseline_intent_acc_majority"] = score_slurp(refs, guess)["intent_acc"]
        return scores

    def write(self, stem: Path) -> list[Path]:
        target = Path(stem).with_suffix(".jsonl")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_predictions(target, [p for _, p in sorted(self.predictions().items())])
        return [target]

    def table(self) -> tuple[list[str], list[list]]:
        """(columns, rows) of reference and decoded text, for the W&B predictions table."""
        rows = [[k, str(self.references[k]), texts[0]] for k, texts in sorted(self.by_key().items())]
        return ["id", "reference", "prediction"], rows


# --- the task -----------------------------------------------------------------------------------
class SluTask:
    name = "slu"
    metrics = tuple(
        Metric(m, "max") for m in ("intent_acc", "slu_f1", "scenario_acc", "action_acc", "slu_f1_word", "slu_f1_char")
    )
    dev_loss = True

    @checked(
        vocab_size=at_least(5),  # four special symbols and at least one more; the corpus may need more
        d_model=at_least(1),
        n_layers=at_least(1),
        n_heads=at_least(1),
        ff_dim=at_least(1),
        dropout=between(0, 1, high_open=True),
        label_smoothing=between(0, 1, high_open=True),
        beam_size=at_least(1),
        max_len=at_least(3),  # BOS + EOS + at least one symbol
    )
    def __init__(
        self,
        vocab_size: int = 1024,
        d_model: int = 512,
        n_layers: int = 3,
        n_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        label_smoothing: float = 0.1,
        beam_size: int = 4,
        length_penalty: float = 0.0,
        max_len: int = 128,
    ):
        if d_model % n_heads:
            raise BindingError(
                f"SluTask.d_model = {d_model} is not divisible by SluTask.n_heads = {n_heads} (attention splits it)",
                ("SluTask.d_model", "SluTask.n_heads"),
            )
        self.vocab_size, self.d_model, self.n_layers, self.n_heads = vocab_size, d_model, n_layers, n_heads
        self.ff_dim, self.dropout, self.label_smoothing = ff_dim, dropout, label_smoothing
        self.beam_size, self.length_penalty, self.max_len = beam_size, length_penalty, max_len
        self.tokenizer: SentencePieceTokenizer | None = None  # fitted by setup() on the training targets
        self.majority: tuple[str, str] | None = None  # the training set's most frequent intent, by setup()

    # data
    def check_data(self, source) -> list[str]:
        return source.missing()

    def prepare_data(self, source, work_dir: Path) -> DataSplits:
        return source.prepare(Path(work_dir))

    def convention(self, source) -> dict:
        return {
            "scorer": "slurp-official (nestbench.metrics.slurp)",
            "keyed_by": "recording file",
            "units": "fraction",
            "eval_recordings": getattr(source, "eval_recordings", "all"),
        }

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None:
        """Train (or reload) the SentencePiece model on the training targets; intents are whole symbols."""
        prefix = Path(run_dir) / "tokenizer" / "slu"
        model = prefix.with_name("slu.model")
        if not model.exists():
            texts = [semantics_to_text(*_entry_semantics(e)) for e in train_entries]
            intents = sorted({f"{e['scenario']}_{e['action']}" for e in train_entries})
            types = sorted({ent["type"] for e in train_entries for ent in e.get("entities", [])})
            SentencePieceTokenizer.train(
                texts, prefix, vocab_size=self.vocab_size, model_type="bpe", user_defined_symbols=[*intents, *types]
            )
        self.tokenizer = SentencePieceTokenizer(model)
        counts = Counter((e["scenario"], e["action"]) for e in train_entries)
        self.majority = min(counts, key=lambda k: (-counts[k], k)) if counts else None  # ties: first by name

    def examples(self, entry: dict, stage: Stage) -> list[Example]:
        return [whole(entry)]

    def make_target(self, example: Example) -> list[int]:
        return self._tok.encode(semantics_to_text(*_entry_semantics(example.entry)))[: self.max_len - 2]

    def collate_targets(self, targets: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        tok = self._tok
        inputs, outputs = teacher_forcing_batch(targets, tok.bos_id, tok.eos_id, tok.pad_id)
        return {"tokens_in": inputs, "tokens_out": outputs}

    # model
    def build_head(self, encoder: EncoderView) -> nn.Module:
        tok = self._tok
        return TextDecoderHead(
            encoder.feature_dim,
            tok.vocab_size,
            tok.pad_id,
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.ff_dim,
            self.dropout,
            self.max_len,
        )

    def loss(self, head: TextDecoderHead, features, lengths, batch: dict) -> torch.Tensor:
        logits = head.decoder(batch["tokens_in"], features, lengths)
        return sequence_loss(logits, batch["tokens_out"], self._tok.pad_id, self.label_smoothing)

    def infer(self, head: TextDecoderHead, features, lengths, examples=None) -> list[str]:
        tok = self._tok
        ids = beam_search(
            head.decoder,
            features,
            lengths,
            tok.bos_id,
            tok.eos_id,
            beam_size=self.beam_size,
            max_len=self.max_len - 1,
            length_penalty=self.length_penalty,
        )
        return [tok.decode(seq) for seq in ids]

    # scoring
    def evaluator(self, eval_set: EvalSet, entries: Sequence[dict]) -> SlurpEvaluator:
        return SlurpEvaluator({e["id"]: reference(e) for e in entries}, self.majority)

    @property
    def _tok(self) -> SentencePieceTokenizer:
        if self.tokenizer is None:
            raise RuntimeError("SluTask.setup() must run before targets are made (it trains the tokenizer)")
        return self.tokenizer


def reference(entry: dict) -> SluPrediction:
    scenario, action, ents = _entry_semantics(entry)
    return SluPrediction(file=entry["id"], scenario=scenario, action=action, entities=ents)


# --- command-line verbs (registered in tasks/__init__.py) -----------------------------------------
def _score(args) -> dict:
    from nestbench.metrics.slurp import score_files

    return score_files(args.ref, args.hyp, allow_partial=args.allow_partial)


def _download(args) -> str:
    from nestbench.recipes.slurp import download_slurp

    return f"SLURP is in {download_slurp(args.to, audio=not args.no_audio)}"


SCORE = Verb(
    "slurp",
    "SLURP intent accuracy and SLU-F1 (official definitions)",
    (
        Arg(("--ref",), {"required": True, "help": "gold: SLURP annotation jsonl (e.g. dataset/slurp/test.jsonl)"}),
        Arg(("--hyp",), {"required": True, "help": "predictions: jsonl of {file, scenario, action, entities}"}),
        Arg(("--allow-partial",), {"action": "store_true", "help": "score even if some gold files lack a prediction"}),
    ),
    _score,
)
DOWNLOAD = Verb(
    "slurp",
    "SLURP annotations + slurp_real/slurp_synth audio (~6 GB)",
    (
        Arg(("--to",), {"default": "data/slurp", "help": "target folder (default: data/slurp)"}),
        Arg(("--no-audio",), {"action": "store_true", "help": "annotations only"}),
    ),
    _download,
)
