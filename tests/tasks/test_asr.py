"""The ASR adapter: what training skips (with counts), the hybrid head learning, decoding, scoring."""

import json
from pathlib import Path

import pytest
import torch

from nestbench.validation import BindingError
from tasks.asr import AsrTask, TranscriptEvaluator, ctc_frames_needed

TEXTS = ["The dog ran.", "A cat sat!", "Is it red?", "Anna's hat, too."]


def _entries(texts, duration=3.0):
    return [{"id": f"u{i}", "duration": duration, "text": t} for i, t in enumerate(texts)]


def test_training_skips_empty_transcripts_and_audio_too_short_for_its_labels_and_says_how_many(tmp_path):
    task = AsrTask(tokenizer="char", loss="ctc")
    entries = _entries(TEXTS) + [
        {"id": "empty", "duration": 3.0, "text": "  "},
        {"id": "short", "duration": 0.4, "text": "A long sentence in very little audio."},
    ]
    task.setup(entries, tmp_path)
    report = json.loads((tmp_path / "tokenizer" / "skipped.json").read_text())
    assert report["empty_transcript"] == {"count": 1, "ids": ["empty"]}
    assert report["too_short_for_ctc"] == {"count": 1, "ids": ["short"]}
    assert task.examples(entries[-1], "train") == [] and task.examples(entries[-2], "train") == []
    assert [ex.id for ex in task.examples(entries[-1], "eval")] == ["short"]  # scored (as deletions) at test time


def test_characters_a_ready_tokenizer_cannot_spell_are_counted_not_fatal(tmp_path):
    from nestbench.text import CharTokenizer

    path = tmp_path / "chars.json"
    CharTokenizer.build(["the dog ran"]).save(path)
    task = AsrTask(tokenizer_path=str(path), loss="ctc")
    task.setup(_entries(["the dog ran", "the Dog ran!"]), tmp_path / "run")
    report = json.loads((tmp_path / "run" / "tokenizer" / "skipped.json").read_text())
    assert report["unknown_tokens"] == {"count": 2, "characters": {"!": 1, "D": 1}}
    assert task.make_target(task.examples(_entries(["the Dog"])[0], "train")[0]).count(task.tokenizer.unk_id) == 1


def test_ctc_frames_needed_counts_a_blank_between_repeats():
    assert ctc_frames_needed([5, 6, 6, 7, 7, 7]) == 6 + 3


@pytest.mark.parametrize(("loss", "decode_with"), [("ctc", "ctc"), ("hybrid", "ctc"), ("hybrid", "rnnt")])
def test_the_head_learns_to_transcribe_and_decodes_with_either_head(tmp_path, loss, decode_with):
    torch.manual_seed(0)
    task = AsrTask(
        tokenizer="char",
        loss=loss,
        decode_with=decode_with,
        d_model=32,
        n_layers=1,
        n_heads=2,
        dropout=0.0,
        upsample=2,
        pred_dim=32,
        joint_dim=32,
    )
    entries = _entries(TEXTS[:2], duration=1.6)  # 20 frames of 80 ms, 40 after upsampling
    task.setup(entries, tmp_path)
    head = task.build_head(type("View", (), {"feature_dim": 8, "frame_shift": 0.08})())
    examples = [task.examples(e, "train")[0] for e in entries]
    batch = task.collate_targets([task.make_target(ex) for ex in examples])
    features, lengths = torch.randn(2, 20, 8), torch.tensor([20, 20])
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    for _ in range(300):
        loss_value = task.loss(head, features, lengths, batch)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
    head.eval()
    assert task.infer(head, features, lengths, examples) == TEXTS[:2]


def test_rnnt_decoding_needs_the_hybrid_head():
    with pytest.raises(BindingError, match="AsrTask.loss = 'hybrid'"):
        AsrTask(loss="ctc", decode_with="rnnt")


def test_evaluator_scores_raw_and_normalised_wer_at_corpus_level_and_writes_what_score_asr_reads(tmp_path):
    import jiwer

    from nestbench.cli import main

    refs = {"a": "The dog ran.", "b": "Is it red?", "c": ""}
    hyps = {"a": "the dog ran", "b": "Is it red?", "c": "uh"}
    ev = TranscriptEvaluator(refs)
    ev.update([type("Ex", (), {"id": k, "key": k})() for k in hyps], list(hyps.values()))
    scores = ev.compute()
    raw = jiwer.process_words(["The dog ran.", "Is it red?"], ["the dog ran", "Is it red?"])
    assert scores["wer"] == pytest.approx((raw.substitutions + raw.deletions + raw.insertions + 1) / 6)
    assert scores["wer_normalized"] == pytest.approx(1 / 6)  # only "uh" against an empty reference
    assert scores["baseline_wer_empty"] == pytest.approx(1.0)
    (written,) = ev.write(tmp_path / "test")
    assert main(["score", "asr", "--ref", str(written), "--hyp", str(written)]) == 0


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("spec", "says"),
    [("asr_mcv.gin", "commonvoice.mozilla.org"), ("ast_fleurs.gin", "lhotse download fleurs")],
)
def test_card_specs_fail_fast_naming_what_to_download(nestbench, run_env, tmp_path, spec, says):
    proc = nestbench("run", str(ROOT / "experiments" / spec), "--quiet", env=run_env, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert says in proc.stderr and "ssl_en_nest_xlarge_v1.0" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.gin"))


def test_tiny_hybrid_asr_run_scores_raw_and_normalised_wer_beside_the_empty_baseline(
    nestbench, run_env, tiny_text_run, tmp_path
):
    """The quickstart spec through the real runner, with the card's hybrid head decoded by RNN-T."""
    from nestbench.results import ResultsStore

    spec = tmp_path / "tiny_asr.gin"
    spec.write_text(
        f"include '{ROOT / 'experiments' / 'quickstart' / 'asr.gin'}'\n{tiny_text_run}"
        "AsrTask.vocab_size = 72\nAsrTask.d_model = 32\nAsrTask.loss = 'hybrid'\nAsrTask.decode_with = 'rnnt'\n"
        "AsrTask.pred_dim = 16\nAsrTask.joint_dim = 16\n"
    )
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "runs" / "quickstart_asr").iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for name, m in metrics.items():
        assert m["baseline_wer_empty"] == 1.0 and m["n_utterances"] == 6
        assert m["wer"] == pytest.approx((m["substitutions"] + m["deletions"] + m["insertions"]) / m["reference_words"])
        lines = (run / "predictions" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == 6 and {"id", "text", "pred_text"} == set(json.loads(lines[0]))
    (record,) = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    assert record["task"] == "asr" and record["convention"]["decoding"] == "rnnt greedy"
    assert record["convention"]["normalization"] == "none"
