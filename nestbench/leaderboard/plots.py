"""One PNG per table: grouped bars, card rows beside ours, one group per column; and one heatmap of
the frozen rows' learned layer weights per board.

Fixed size, fonts and colours, saved as ``figures.save_png`` does: the same results and the same
matplotlib give the same bytes.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..figures import STYLE, save_png
from .aggregate import OurRow
from .render import mode_label
from .tables import Table

CARD_COLOURS = ("#4d4d4d", "#8c8c8c", "#bdbdbd")
OUR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def plot_table(table: Table, ours: list[OurRow], path: Path, *, with_reference: bool) -> Path | None:
    """Write ``path`` and return it, or return None when the table has no value to draw."""
    series = []  # (label, values, errors, colour, hatch)
    if with_reference:
        for i, ref in enumerate(table.rows):
            values = [ref.values.get(c.id, math.nan) for c in table.columns]
            name = ref.model if ref.checkpoint else ref.system
            series.append((f"{name} (card)", values, None, CARD_COLOURS[i % len(CARD_COLOURS)], "//"))
    for i, row in enumerate(ours):
        cells = [row.cells.get(c.id) for c in table.columns]
        values = [c.value if c else math.nan for c in cells]
        errors = [c.std if c and c.std is not None else 0.0 for c in cells]
        label = f"{row.model}, {mode_label(row.mode, row.aggregation)} (ours {i + 1})"
        series.append((label, values, errors, OUR_COLOURS[i % len(OUR_COLOURS)], ""))
    if not any(not math.isnan(v) for _, values, *_ in series for v in values):
        return None

    with rc_context(STYLE):
        n_cols, n_series = len(table.columns), len(series)
        fig = Figure(figsize=(max(4.0, 1.1 * n_cols * max(1, n_series) ** 0.5 + 2.0), 3.4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / n_series
        for k, (label, values, errors, colour, hatch) in enumerate(series):
            xs = [j - 0.4 + width * (k + 0.5) for j in range(n_cols)]
            yerr = errors if errors and any(errors) else None
            ax.bar(xs, values, width, yerr=yerr, capsize=2, label=label, color=colour, hatch=hatch, edgecolor="white")
        ax.set_xticks(range(n_cols))
        ax.set_xticklabels([textwrap.fill(c.header, 16) for c in table.columns])
        units = sorted({c.unit for c in table.columns if c.unit})
        ax.set_ylabel(", ".join(units) if units else "value")
        ax.set_title(table.title)
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", linewidth=0.3)
        ax.set_axisbelow(True)
        return save_png(fig, path)


def plot_layer_use(profiles: list[tuple[str, dict[str, float]]], path: Path) -> Path | None:
    """A heatmap of learned layer weights, one row per ``(label, {layer id: weight})``, layers on x
    (as the SUPERB and NEST papers' layer-weight figures); None when there is no row."""
    if not profiles:
        return None
    n_layers = 1 + max(int(k) for _, weights in profiles for k in weights)
    grid = [[weights.get(str(j), math.nan) for j in range(n_layers)] for _, weights in profiles]
    with rc_context(STYLE):
        fig = Figure(figsize=(max(4.0, 0.35 * n_layers + 3.5), 0.4 * len(profiles) + 1.4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
        if n_layers <= 16:  # small grids carry their numbers
            for i, row in enumerate(grid):
                for j, w in enumerate(row):
                    if not math.isnan(w):
                        ink = "black" if image.norm(w) > 0.6 else "white"  # readable on viridis' light end
                        ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=6, color=ink)
        ax.set_xticks(range(n_layers))
        ax.set_xlabel("encoder layer")
        ax.set_yticks(range(len(profiles)))
        ax.set_yticklabels([textwrap.fill(label, 60) for label, _ in profiles])
        ax.set_title("Learned layer weights of frozen encoders")
        fig.colorbar(image, ax=ax, label="weight")
        return save_png(fig, path)
