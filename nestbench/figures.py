"""What every nestbench PNG shares, so the same data and the same matplotlib give the same bytes.

Figures are drawn on a private Agg canvas (no pyplot, so a notebook's backend and figures are left
alone) with fixed fonts, and saved without the ``Software`` tag that carries matplotlib's version.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "svg.hashsalt": "nestbench",
    "path.simplify": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def save_png(fig: Figure, path: Path) -> Path:
    """``fig`` as PNG at ``path`` (call it inside ``rc_context(STYLE)``, where the figure was drawn)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path
