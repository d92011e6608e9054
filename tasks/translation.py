"""Speech translation (FLEURS-style corpus BLEU).

The AST task adapter comes later in this file; for now it holds ``nestbench score ast``.
"""

from nestbench.commands import Arg, Verb


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
