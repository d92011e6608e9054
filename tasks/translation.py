"""Speech translation: NEST features -> an autoregressive transformer decoder -> target-language text, scored by BLEU.

The NEST card's FLEURS numbers come from Canary initialised with NEST-XL: an encoder-decoder that writes
the translation token by token. The head here is the decoder SLU uses (``nestbench.modules.text_decoder``:
pre-LN transformer layers cross-attending to the encoder's frames, incremental beam search with GNMT's
length penalty). One model serves several target languages: the decoder starts from a target-language
token (``<2de>``, ``<2es>`` ...) instead of a plain start token, as multilingual NMT (Johnson et al., 2017)
and mBART do, so it learns the language from its first input and nothing else changes.

The vocabulary is one SentencePiece BPE model trained on the training translations (all target languages
together), the language tokens as whole symbols; it is kept in the run folder. Targets are the raw cased,
punctuated translations, and BLEU is scored on the detokenised output as the card does (sacrebleu corpus
BLEU, 13a, cased, its signature stored: ``nestbench.metrics.translation``), with chrF beside it.

Optionally (``source_ctc_weight`` > 0) a CTC loss on the source transcript (``text``) is added on the
encoder's frames, with its own SentencePiece vocabulary: the auxiliary ASR objective of joint CTC/attention
speech translation (and Canary's multitask ASR+AST training). It teaches the encoder the source words
quickly, which a small model trained from scratch needs; inference does not use it.

Manifests: one line per utterance with the source audio and ``target_text`` (the translation) and
``target_lang``; ``text`` (the source transcript) is used only by the optional CTC loss. Data sources:
``FleursData`` (FLEURS English audio paired with German/Spanish/French text by sentence id, through lhotse's
``fleurs`` recipe) and ``SpeechTextMiniData`` (speech synthesised offline with a templated translation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from nestbench.commands import Arg, Verb
from nestbench.modules.beam_search import beam_search
from nestbench.modules.ctc import ctc_loss, ctc_targets
from nestbench.modules.text_decoder import TextDecoderHead, sequence_loss, teacher_forcing_batch
from nestbench.provenance import short_hash
from nestbench.task import DataSplits, EncoderView, EvalSet, Example, KeyedOutputs, Metric, Stage, whole
from nestbench.text.tokenizer import SentencePieceTokenizer
from nestbench.validation import NON_EMPTY, BindingError, at_least, between, checked

from .asr import SpeechTextMiniData, write_manifest  # the synthetic corpus serves ASR and AST alike

# --- data sources ------------------------------------------------------------------------------
FLEURS_SHORT = {"en_us": "en", "de_de": "de", "es_419": "es", "fr_fr": "fr"}


class FleursData:
    """FLEURS in lhotse's download layout, English audio paired with each target language's text of the same
    FLoRes sentence (FLEURS sentence ids are shared across languages): train and a pooled dev over every
    pair, one test set per pair (``fleurs_en_de`` ...). Texts are FLEURS' raw transcriptions (cased and
    punctuated), as the card's BLEU is scored.

    Layout (``lhotse download fleurs``): ``<corpus>/<lang>/<split>/<file>.wav`` and
    ``<corpus>/metadata/<lang>/<split>.tsv`` (id, file, raw text, normalised text, characters, samples,
    gender)."""

    convention = {"dataset": "fleurs"}
    SPLITS = ("train", "dev", "test")

    @checked(corpus_dir=NON_EMPTY, source=NON_EMPTY, targets=NON_EMPTY)
    def __init__(self, corpus_dir: str, source: str = "en_us", targets: tuple[str, ...] = ("de_de", "es_419", "fr_fr")):
        self.corpus_dir, self.source, self.targets = Path(corpus_dir).expanduser(), source, tuple(targets)

    def missing(self) -> list[str]:
        problems = []
        for lang in (self.source, *self.targets):
            lacking = [s for s in self.SPLITS if not (self.corpus_dir / "metadata" / lang / f"{s}.tsv").is_file()]
            if lacking or not (self.corpus_dir / self.source / "train").is_dir():
                problems.append(
                    f"FLEURS '{lang}' not found under {self.corpus_dir} (need metadata/{lang}/{{train,dev,test}}.tsv "
                    f"and {self.source}/<split>/*.wav): run `pip install datasets` and `lhotse download fleurs "
                    f"{self.corpus_dir} -l {lang}` (google/fleurs on the Hugging Face hub)"
                )
        return problems

    def prepare(self, work_dir: Path) -> DataSplits:
        out = Path(work_dir) / f"fleurs-{short_hash([str(self.corpus_dir), self.source, self.targets])}"
        sets: dict[str, list[dict]] = {}
        for split in self.SPLITS:
            source = _fleurs_rows(self.corpus_dir / "metadata" / self.source / f"{split}.tsv")
            for target in self.targets:
                texts = {
                    r["prompt"]: r["raw"] for r in _fleurs_rows(self.corpus_dir / "metadata" / target / f"{split}.tsv")
                }
                pair = f"{FLEURS_SHORT.get(self.source, self.source)}_{FLEURS_SHORT.get(target, target)}"
                entries = [
                    {
                        "audio_filepath": str(self.corpus_dir / self.source / split / r["file"]),
                        "duration": r["seconds"],
                        "id": f"{Path(r['file']).stem}-{pair}",
                        "text": r["raw"],
                        "target_text": texts[r["prompt"]],
                        "source_lang": FLEURS_SHORT.get(self.source, self.source),
                        "target_lang": FLEURS_SHORT.get(target, target),
                    }
                    for r in source
                    if r["prompt"] in texts
                ]
                sets.setdefault(split if split != "test" else f"fleurs_{pair}", []).extend(entries)
        paths = {name: write_manifest(out / f"{name}.jsonl", e) for name, e in sets.items()}
        tests = tuple(
            EvalSet(name, path, {}, {"language_pair": name.removeprefix("fleurs_").replace("_", "-")})
            for name, path in paths.items()
            if name.startswith("fleurs_")
        )
        return DataSplits(train=(paths["train"],), dev=EvalSet("dev", paths["dev"]), tests=tests)


def _fleurs_rows(tsv: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(tsv.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 7:
            raise ValueError(
                f"{tsv}:{n}: expected 7 tab-separated fields (lhotse's FLEURS metadata), got {len(fields)}"
            )
        rows.append({"prompt": fields[0], "file": fields[1], "raw": fields[2], "seconds": int(fields[5]) / 16000})
    return rows


def language_token(lang: str) -> str:
    return f"<2{lang}>"


# --- the evaluator ------------------------------------------------------------------------------
class TranslationEvaluator(KeyedOutputs):
    """Translations per utterance, scored at corpus level by sacrebleu (BLEU, chrF)."""

    def __init__(self, references: dict[str, str], baseline: str):
        super().__init__()
        self.references, self.baseline = references, baseline

    def hypotheses(self) -> dict[str, str]:
        return {k: texts[0] for k, texts in self.by_key().items()}

    def compute(self) -> dict[str, float]:
        from nestbench.metrics.translation import translation_scores

        hyps = self.hypotheses()
        refs = {k: self.references[k] for k in hyps}
        scores = translation_scores(refs, hyps)
        base = translation_scores(refs, {k: self.baseline for k in hyps})
        # numbers for the result table, and the signature beside the BLEU it qualifies (the run's convention
        # holds it too); n-gram precisions and chrF's signature stay in `nestbench score ast`'s output
        kept = {k: v for k, v in scores.items() if isinstance(v, int | float) or k == "bleu_signature"}
        return {**kept, "baseline_bleu_most_frequent": base["bleu"]}

    def write(self, stem: Path) -> list[Path]:
        from nestbench.fileio import write_text_atomic

        target = Path(stem).with_suffix(".jsonl")
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps({"id": k, "text": h, "reference": self.references[k]}, ensure_ascii=False) + "\n"
            for k, h in sorted(self.hypotheses().items())
        ]
        write_text_atomic(target, "".join(lines))
        return [target]

    def table(self) -> tuple[list[str], list[list]]:
        return ["id", "reference", "translation"], [
            [k, self.references[k], h] for k, h in sorted(self.hypotheses().items())
        ]


# --- the head -----------------------------------------------------------------------------------
class TranslationHead(TextDecoderHead):
    """SLU's text decoder, plus a linear CTC output over the source vocabulary when the auxiliary
    source-transcript loss is on (``source_vocab`` > 0)."""

    def __init__(self, feature_dim: int, *decoder_args, source_vocab: int = 0):
        super().__init__(feature_dim, *decoder_args)
        self.source_ctc = nn.Linear(feature_dim, source_vocab) if source_vocab else None


# --- the task -----------------------------------------------------------------------------------
class TranslationTask:
    name = "ast"
    metrics = (Metric("bleu", "max"), Metric("chrf", "max"))
    dev_loss = True

    @checked(
        vocab_size=at_least(8),
        d_model=at_least(1),
        n_layers=at_least(1),
        n_heads=at_least(1),
        ff_dim=at_least(1),
        dropout=between(0, 1, high_open=True),
        label_smoothing=between(0, 1, high_open=True),
        beam_size=at_least(1),
        length_penalty=at_least(0),
        max_len=at_least(3),
        source_ctc_weight=between(0, 1, high_open=True),
        source_vocab_size=at_least(8),
    )
    def __init__(
        self,
        vocab_size: int = 4096,
        d_model: int = 512,
        n_layers: int = 4,
        n_heads: int = 8,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        label_smoothing: float = 0.1,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        max_len: int = 256,
        target_field: str = "target_text",
        language_field: str = "target_lang",
        source_ctc_weight: float = 0.0,
        source_vocab_size: int = 256,
        source_field: str = "text",
    ):
        if d_model % n_heads:
            raise BindingError(
                f"TranslationTask.d_model = {d_model} is not divisible by TranslationTask.n_heads = {n_heads}",
                ("TranslationTask.d_model", "TranslationTask.n_heads"),
            )
        self.vocab_size, self.d_model, self.n_layers, self.n_heads = vocab_size, d_model, n_layers, n_heads
        self.ff_dim, self.dropout, self.label_smoothing = ff_dim, dropout, label_smoothing
        self.beam_size, self.length_penalty, self.max_len = beam_size, length_penalty, max_len
        self.target_field, self.language_field = target_field, language_field
        self.source_ctc_weight, self.source_vocab_size, self.source_field = (
            source_ctc_weight,
            source_vocab_size,
            source_field,
        )
        self.tokenizer: SentencePieceTokenizer | None = None  # fitted by setup()
        self.source_tokenizer: SentencePieceTokenizer | None = None  # only with source_ctc_weight > 0
        self.languages: tuple[str, ...] = ()
        self.most_frequent = ""  # the trivial baseline: the most frequent training translation

    def check_data(self, source) -> list[str]:
        return source.missing()

    def prepare_data(self, source, work_dir: Path) -> DataSplits:
        return source.prepare(Path(work_dir))

    def convention(self, source) -> dict:
        from nestbench.metrics.translation import bleu_signature

        return {
            "scorer": "sacrebleu corpus BLEU and chrF (nestbench.metrics.translation)",
            "signature": bleu_signature(),
            "units": "bleu",
            **getattr(source, "convention", {}),
        }

    def setup(self, train_entries: Sequence[dict], run_dir: Path) -> None:
        """Fit (or reload) the target vocabulary; each target language gets its start token."""
        from collections import Counter

        texts = [self._target(e) for e in train_entries]
        self.languages = tuple(sorted({self._language(e) for e in train_entries}))
        self.most_frequent = Counter(t for t in texts if t).most_common(1)[0][0] if any(texts) else ""
        folder = Path(run_dir) / "tokenizer"
        model = folder / "ast.model"
        if not model.exists():
            SentencePieceTokenizer.train(
                [t for t in texts if t],
                folder / "ast",
                vocab_size=self.vocab_size,
                model_type="bpe",
                user_defined_symbols=[language_token(x) for x in self.languages],
            )
        self.tokenizer = SentencePieceTokenizer(model)
        if self.source_ctc_weight > 0:
            sources = [self._source(e) for e in train_entries if self._source(e).strip()]
            if not sources:
                raise ValueError(
                    f"TranslationTask.source_ctc_weight = {self.source_ctc_weight} needs source transcripts, but no "
                    f"training entry has a non-empty '{self.source_field}'"
                )
            source_model = folder / "source.model"
            if not source_model.exists():
                SentencePieceTokenizer.train(
                    sources, folder / "source", vocab_size=self.source_vocab_size, model_type="bpe"
                )
            self.source_tokenizer = SentencePieceTokenizer(source_model)

    def _source(self, entry: dict) -> str:
        value = entry.get(self.source_field)
        return value if isinstance(value, str) else ""

    def _target(self, entry: dict) -> str:
        value = entry.get(self.target_field)
        return value if isinstance(value, str) else ""

    def _language(self, entry: dict) -> str:
        return str(entry.get(self.language_field, "xx"))

    def _start(self, entry: dict) -> int:
        lang = self._language(entry)
        if lang not in self.languages:
            where = entry.get("_source", entry["id"])
            raise ValueError(f"{where}: target language {lang!r} was not among the training ones {self.languages}")
        return self._tok.encode(language_token(lang))[-1]

    def examples(self, entry: dict, stage: Stage) -> list[Example]:
        if stage == "train" and not self._target(entry).strip():
            return []
        return [whole(entry)]

    def make_target(self, example: Example) -> tuple[int, list[int], list[int]]:
        entry = example.entry
        source = self.source_tokenizer.encode(self._source(entry)) if self.source_tokenizer is not None else []
        return self._start(entry), self._tok.encode(self._target(entry))[: self.max_len - 2], source

    def collate_targets(self, targets) -> dict[str, torch.Tensor]:
        tok = self._tok
        starts = [s for s, _, _ in targets]
        inputs, outputs = teacher_forcing_batch([t for _, t, _ in targets], starts, tok.eos_id, tok.pad_id)
        batch = {"tokens_in": inputs, "tokens_out": outputs, "start": torch.tensor(starts)}
        if self.source_tokenizer is not None:
            sources, lengths = ctc_targets([s for _, _, s in targets], self.source_tokenizer.pad_id)
            batch |= {"source_tokens": sources, "source_lengths": lengths}
        return batch

    # model
    def build_head(self, encoder: EncoderView) -> nn.Module:
        tok = self._tok
        return TranslationHead(
            encoder.feature_dim,
            tok.vocab_size,
            tok.pad_id,
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.ff_dim,
            self.dropout,
            self.max_len,
            source_vocab=self.source_tokenizer.vocab_size if self.source_tokenizer is not None else 0,
        )

    def loss(self, head: TranslationHead, features, lengths, batch: dict) -> torch.Tensor:
        logits = head.decoder(batch["tokens_in"].to(features.device), features, lengths)
        loss = sequence_loss(logits, batch["tokens_out"].to(features.device), self._tok.pad_id, self.label_smoothing)
        if self.source_tokenizer is None:
            return loss
        aux = ctc_loss(
            head.source_ctc(features),
            lengths,
            batch["source_tokens"].to(features.device),
            batch["source_lengths"].to(features.device),
            blank=self.source_tokenizer.pad_id,
        )
        return (1 - self.source_ctc_weight) * loss + self.source_ctc_weight * aux

    def infer(self, head: TextDecoderHead, features, lengths, examples: Sequence[Example]) -> list[str]:
        tok = self._tok
        starts = torch.tensor([self._start(ex.entry) for ex in examples], device=features.device)
        ids = beam_search(
            head.decoder,
            features,
            lengths,
            starts,
            tok.eos_id,
            beam_size=self.beam_size,
            max_len=self.max_len - 1,
            length_penalty=self.length_penalty,
        )
        return [tok.decode(seq).strip() for seq in ids]

    def evaluator(self, eval_set: EvalSet, entries: Sequence[dict]) -> TranslationEvaluator:
        return TranslationEvaluator({e["id"]: self._target(e) for e in entries}, self.most_frequent)

    @property
    def _tok(self) -> SentencePieceTokenizer:
        if self.tokenizer is None:
            raise RuntimeError("TranslationTask.setup() must run before targets are made (it trains the tokenizer)")
        return self.tokenizer


__all__ = ["FleursData", "SpeechTextMiniData", "TranslationTask"]


# --- command-line verbs (registered in tasks/__init__.py) -----------------------------------------
def _score(args) -> dict:
    from nestbench.metrics.translation import score_translation_files

    return score_translation_files(args.ref, args.hyp, allow_partial=args.allow_partial)


SCORE = Verb(
    "ast",
    "sacrebleu corpus BLEU (13a, cased) and chrF, each with its sacrebleu signature",
    (
        Arg(("--ref",), {"required": True, "help": "reference translations: jsonl of {id, text}"}),
        Arg(
            ("--hyp",),
            {
                "required": True,
                "help": "hypotheses: jsonl of {id, text}, or NeMo output (pred_text wins over text); "
                "paired with --ref by id, never by line order",
            },
        ),
        Arg(("--allow-partial",), {"action": "store_true", "help": "score only the ids both files have"}),
    ),
    _score,
)
