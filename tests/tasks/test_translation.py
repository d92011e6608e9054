"""The speech-translation adapter: one decoder, the target language from its start token; sacrebleu scoring;
FLEURS paired by sentence id."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from nestbench.task import Example
from tasks.translation import FleursData, TranslationEvaluator, TranslationTask

PAIRS = [("de", "Der Hund lief."), ("fr", "Le chien a couru.")]


def test_one_decoder_writes_the_language_its_start_token_asks_for(tmp_path):
    torch.manual_seed(0)
    task = TranslationTask(vocab_size=60, d_model=32, n_layers=1, n_heads=2, ff_dim=64, dropout=0.0,
                           label_smoothing=0.0, beam_size=2, max_len=40)  # fmt: skip
    entries = [{"id": f"u{lang}", "duration": 1.0, "target_text": t, "target_lang": lang} for lang, t in PAIRS]
    task.setup(entries, tmp_path)
    assert task.languages == ("de", "fr")
    head = task.build_head(type("View", (), {"feature_dim": 8, "frame_shift": 0.08})())
    examples = [task.examples(e, "train")[0] for e in entries]
    batch = task.collate_targets([task.make_target(ex) for ex in examples])
    memory = torch.randn(1, 6, 8).expand(2, -1, -1)  # the same speech for both: only the start token differs
    lengths = torch.tensor([6, 6])
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    for _ in range(150):
        loss = task.loss(head, memory, lengths, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    assert task.infer(head, memory, lengths, examples) == [t for _, t in PAIRS]


def test_source_ctc_teaches_the_encoder_frames_the_source_transcript(tmp_path):
    """The auxiliary loss: a CTC output on the features, over its own source vocabulary, trained with the
    decoder; its best path spells the source transcript, and a batch's loss mixes both by the weight."""
    torch.manual_seed(0)
    task = TranslationTask(vocab_size=60, d_model=32, n_layers=1, n_heads=2, ff_dim=64, dropout=0.0,
                           label_smoothing=0.0, max_len=40, source_ctc_weight=0.5, source_vocab_size=40)  # fmt: skip
    sources = ["the dog ran", "a cat sat"]
    entries = [{"id": f"u{i}", "duration": 1.0, "text": src, "target_text": t, "target_lang": lang}
               for i, (src, (lang, t)) in enumerate(zip(sources, PAIRS, strict=True))]  # fmt: skip
    task.setup(entries, tmp_path)
    assert (tmp_path / "tokenizer" / "source.model").is_file()
    head = task.build_head(type("View", (), {"feature_dim": 64, "frame_shift": 0.08})())
    batch = task.collate_targets([task.make_target(task.examples(e, "train")[0]) for e in entries])
    memory, lengths = torch.randn(2, 24, 64), torch.tensor([24, 20])  # linearly separable frames
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    for _ in range(300):
        loss = task.loss(head, memory, lengths, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    from nestbench.modules.ctc import greedy_ctc

    paths = greedy_ctc(head.source_ctc(memory).log_softmax(-1), lengths, task.source_tokenizer.pad_id)
    assert [task.source_tokenizer.decode(p) for p in paths] == sources


def test_source_ctc_without_source_transcripts_is_a_clear_error(tmp_path):
    task = TranslationTask(vocab_size=60, source_ctc_weight=0.3)
    with pytest.raises(ValueError, match="needs source transcripts, but no training entry has a non-empty 'text'"):
        task.setup([{"id": "a", "duration": 1.0, "target_text": "Hallo.", "target_lang": "de"}], tmp_path)


def test_a_target_language_unseen_in_training_is_a_clear_error(tmp_path):
    task = TranslationTask(vocab_size=60)
    task.setup([{"id": "a", "duration": 1.0, "target_text": "Hallo.", "target_lang": "de"}], tmp_path)
    with pytest.raises(ValueError, match="target language 'es' was not among the training ones"):
        task.make_target(Example("b", "b", {"id": "b", "duration": 1.0, "target_text": "Hola.", "target_lang": "es"}))


def test_evaluator_is_sacrebleu_with_its_baseline_and_writes_what_score_ast_reads(tmp_path):
    import sacrebleu

    from nestbench.cli import main

    refs = {"a": "Der Hund lief schnell nach Hause.", "b": "Die Katze schlief.", "c": "Es regnet heute."}
    hyps = {"a": "Der Hund lief nach Hause.", "b": "Die Katze schlief.", "c": "Es schneit heute."}
    ev = TranslationEvaluator(refs, baseline="Die Katze schlief.")
    ev.update([Example(k, k, {}) for k in reversed(hyps)], [hyps[k] for k in reversed(hyps)])
    scores = ev.compute()
    order = sorted(refs)
    expected = sacrebleu.corpus_bleu([hyps[k] for k in order], [[refs[k] for k in order]])
    assert scores["bleu"] == pytest.approx(expected.score)
    baseline = sacrebleu.corpus_bleu(["Die Katze schlief."] * 3, [[refs[k] for k in order]])
    assert scores["baseline_bleu_most_frequent"] == pytest.approx(baseline.score)
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert all(isinstance(v, int | float) for k, v in scores.items() if k != "bleu_signature")  # a table of numbers
    (written,) = ev.write(tmp_path / "test")
    refs_file = tmp_path / "refs.jsonl"
    refs_file.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in refs.items()))
    assert main(["score", "ast", "--ref", str(refs_file), "--hyp", str(written)]) == 0


def _fleurs(root, lang, split, rows):
    (root / "metadata" / lang).mkdir(parents=True, exist_ok=True)
    lines = []
    for prompt, name, raw in rows:
        lines.append("\t".join([prompt, name, raw, raw.lower(), "x |", "16000", "MALE"]))
        if lang == "en_us":
            (root / lang / split).mkdir(parents=True, exist_ok=True)
            sf.write(root / lang / split / name, np.zeros(16000, np.float32), 16000)
    (root / "metadata" / lang / f"{split}.tsv").write_text("\n".join(lines) + "\n")


def test_fleurs_pairs_english_audio_with_each_target_by_sentence_id(tmp_path):
    root = tmp_path / "fleurs"
    assert "lhotse download fleurs" in FleursData(str(root), targets=("de_de",)).missing()[0]
    for split in ("train", "dev", "test"):
        _fleurs(root, "en_us", split, [("7", f"{split}1.wav", "The dog ran."), ("9", f"{split}2.wav", "It rains.")])
        _fleurs(root, "de_de", split, [("9", f"d{split}.wav", "Es regnet."), ("7", f"e{split}.wav", "Der Hund lief.")])
    source = FleursData(str(root), targets=("de_de",))
    assert source.missing() == []
    splits = source.prepare(tmp_path / "work")
    (test,) = splits.tests
    assert test.name == "fleurs_en_de" and test.info == {"language_pair": "en-de"}
    lines = [json.loads(x) for x in test.manifest.read_text().splitlines()]
    assert [(x["text"], x["target_text"], x["target_lang"]) for x in lines] == [
        ("The dog ran.", "Der Hund lief.", "de"),
        ("It rains.", "Es regnet.", "de"),
    ]


def test_tiny_ast_run_scores_bleu_with_its_signature_beside_the_baseline(nestbench, run_env, tiny_text_run, tmp_path):
    """The quickstart spec through the real runner, with the auxiliary source CTC on."""
    from pathlib import Path

    from nestbench.results import ResultsStore

    root = Path(__file__).resolve().parents[2]
    spec = tmp_path / "tiny_ast.gin"
    spec.write_text(
        f"include '{root / 'experiments' / 'quickstart' / 'ast.gin'}'\n{tiny_text_run}"
        "TranslationTask.vocab_size = 80\nTranslationTask.source_vocab_size = 72\nTranslationTask.d_model = 32\n"
        "TranslationTask.ff_dim = 64\nTranslationTask.max_len = 24\n"
    )
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "runs" / "quickstart_ast").iterdir() if p.is_dir()]
    assert (run / "tokenizer" / "source.model").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    for m in metrics.values():
        assert 0 <= m["bleu"] <= 100 and 0 <= m["baseline_bleu_most_frequent"] <= 100
    (record,) = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    assert record["task"] == "ast" and record["convention"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
