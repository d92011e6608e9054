"""Speech recognition (MCV-style WER with punctuation and capitalisation).

The ASR task adapter comes later in this file; for now it holds ``nestbench score asr``.
"""

from nestbench.commands import Arg, Verb


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
