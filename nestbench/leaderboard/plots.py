"""One PNG per table: grouped bars, card rows beside ours, one group per column.

Drawn on a private Agg canvas (no pyplot, so a notebook's backend and figures are left alone) with
fixed size, fonts and colours, and saved without the ``Software`` tag, so the same results and the
same matplotlib give the same bytes.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .aggregate import OurRow
from .render import mode_label
from .tables import Table

CARD_COLOURS = ("#4d4d4d", "#8c8c8c", "#bdbdbd")
OUR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "svg.hashsalt": "nestbench",
    "path.simplify": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


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
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path
