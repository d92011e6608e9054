"""Which encoder layers a frozen run learned to use: its layer weights as data and as a bar chart.

The SUPERB and NEST papers read a frozen encoder's learned layer weights as a profile of where a
task's information lives. A run with learned weights (``aggregation`` 'superb' or 'nemo') keeps that
profile in its run folder (``layer_weights.json``, ``layer_weights.png``) and in its results record,
so the leaderboard can draw every task's profile without the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .figures import STYLE, save_png

JSON_FILE, PNG_FILE = "layer_weights.json", "layer_weights.png"
LEARNED = ("superb", "nemo")


def layer_profile(upstream) -> dict | None:
    """``{"protocol", "temperature", "weights": {layer id: weight}}`` with the weights as the aggregator
    applies them (softmaxed for 'superb', raw for 'nemo'); None when no weights are learned."""
    aggregator = upstream.aggregator
    if not upstream.frozen or aggregator.protocol not in LEARNED:
        return None
    weights = {str(layer): w for layer, w in upstream.layer_weights().items()}
    return {"protocol": aggregator.protocol, "temperature": aggregator.temperature, "weights": weights}


def write_layer_profile(profile: dict, run_dir: Path, title: str) -> list[Path]:
    """``layer_weights.json`` and ``layer_weights.png`` in ``run_dir``; returns both paths."""
    run_dir = Path(run_dir)
    data = run_dir / JSON_FILE
    data.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [data, plot_layer_weights(profile, run_dir / PNG_FILE, title)]


def plot_layer_weights(profile: dict, path: Path, title: str) -> Path:
    """One bar per layer, with a dashed line at the even mix 1/L: bars above it are the layers favoured."""
    layers = sorted(profile["weights"], key=int)
    values = [profile["weights"][k] for k in layers]
    with rc_context(STYLE):
        fig = Figure(figsize=(max(3.5, 0.3 * len(layers) + 1.5), 2.8), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.bar(range(len(layers)), values, color="#1f77b4")
        ax.axhline(1.0 / len(layers), color="#4d4d4d", linestyle="--", linewidth=0.8, label=f"even mix 1/{len(layers)}")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers)
        ax.set_xlabel("encoder layer")
        ax.set_ylabel("softmax weight" if profile["protocol"] == "superb" else "weight")
        ax.set_title(f"{title}: layer weights ({profile['protocol']})")
        ax.legend(fontsize=7, frameon=False)
        ax.grid(axis="y", linewidth=0.3)
        ax.set_axisbelow(True)
        return save_png(fig, path)
