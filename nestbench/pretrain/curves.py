"""``curves.png``: masked-token loss and accuracy over training steps, read from the run's ``csv/metrics.csv``.

Why a picture: whether pretraining is learning (the loss leaving ln(num_classes), the uniform guess)
is read at a glance from the curve, not from a table of numbers.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


def read_curves(metrics_csv: Path) -> dict[str, list[tuple[int, float]]]:
    """``{"train/loss": [(step, value), ...], ...}`` for every column Lightning's CSV logger wrote."""
    curves: dict[str, list[tuple[int, float]]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in (None, ""):
                    curves.setdefault(key, []).append((step, float(value)))
    return curves


def plot_curves(
    metrics_csv: Path, out: Path, *, num_classes: int, title: str, baselines: dict | None = None
) -> Path | None:
    """Loss (left) and masked accuracy (right), train and dev, beside the uniform guess and, when given,
    the dev targets' context-free baselines; ``None`` when nothing was logged."""
    if not Path(metrics_csv).is_file():
        return None
    curves = read_curves(metrics_csv)
    if not curves.get("train/loss") and not curves.get("dev/loss"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, label in ((left, "loss", "masked-token cross-entropy"), (right, "masked_acc", "masked accuracy")):
        for split, style in (("train", "-"), ("dev", "o-")):
            points = curves.get(f"{split}/{metric}", [])
            if points:
                ax.plot(*zip(*points, strict=True), style, label=split, markersize=3, linewidth=1)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    uniform = f"uniform guess (ln {num_classes})"
    left.axhline(math.log(num_classes), color="grey", linestyle="--", linewidth=1, label=uniform)
    right.axhline(1.0 / num_classes, color="grey", linestyle="--", linewidth=1, label="chance")
    baselines = baselines or {}
    if "baseline_unigram_loss" in baselines:
        left.axhline(baselines["baseline_unigram_loss"], color="black", linestyle=":", linewidth=1,
                     label="dev class frequencies (no context)")  # fmt: skip
    if "baseline_majority_acc" in baselines:
        right.axhline(baselines["baseline_majority_acc"], color="black", linestyle=":", linewidth=1,
                      label="dev majority class")  # fmt: skip
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return out
