"""``build_leaderboards``: results stores in, boards (markdown + PNGs) out.

Two boards: ``nest_card.md`` (the card tables with our full-data rows) and ``quickstart.md`` (our
quickstart rows only), each with ``<board>_<table>.png`` beside it and, when a frozen row recorded its
learned layer weights, ``<board>_layers.png`` (layer use per task). Run folders are linked relative
to the board when the record holds a relative ``run_dir`` (relative to ``runs_root``, the directory
``nestbench run`` was started from); an absolute ``run_dir`` is printed as recorded, because
relativising it would make the board depend on where this checkout lives.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

from ..layer_profile import PNG_FILE as LAYER_PNG
from ..results import ResultsStore
from .aggregate import Placement, Refusal, Run, place, row_layer_weights
from .plots import plot_layer_use, plot_table
from .render import mode_label, render_board
from .tables import Table, load_tables

log = logging.getLogger(__name__)
BOARD_FILES = {"full": "nest_card", "quickstart": "quickstart"}


class RefusedResultsError(ValueError):
    """Some results break their table's convention; the message lists every one and why."""

    def __init__(self, refusals: list[Refusal]):
        self.refusals = refusals
        how = "use --skip-refused (strict=False from Python) to build without them"
        lines = [f"{len(refusals)} result(s) refused ({how}):"]
        super().__init__("\n".join(lines + [f"  - {r}" for r in refusals]))


def default_results(runs_dir: str | Path | None = None) -> list[Path]:
    """The committed results (``leaderboards/results``) and the local runs store, those that exist.

    The runs store is ``<runs_dir or $NESTBENCH_RUNS or runs>/results.jsonl``, as ``nestbench run`` writes it.
    """
    runs = Path(runs_dir or os.environ.get("NESTBENCH_RUNS") or "runs")
    return [p for p in (Path("leaderboards") / "results", runs / "results.jsonl") if p.exists()]


def read_results(results: list[Path] | Path) -> list[Run]:
    """Records from results stores: a ``.jsonl`` file, or a folder whose ``*.jsonl`` files are read."""
    paths = [results] if isinstance(results, (str, Path)) else list(results)
    runs = []
    for path in map(Path, paths):
        if path.is_dir():
            stores = sorted(path.glob("*.jsonl"))
        elif path.is_file():
            stores = [path]
        else:
            raise FileNotFoundError(f"results store {path} does not exist")
        for store in stores:
            runs += [Run(record, store) for record in ResultsStore(store).read()]
    return runs


def build_leaderboards(
    results: list[Path] | Path,
    out_dir: Path,
    *,
    strict: bool = True,
    tables_dir: Path | None = None,
    runs_root: Path | None = None,
) -> list[Path]:
    """Write both boards and their plots into ``out_dir``; return the files written.

    With ``strict`` a result whose convention does not fit its table raises ``RefusedResultsError``
    listing every such result before anything is written; without it they are logged, left out and
    listed on the board.
    """
    tables = load_tables(tables_dir)
    placement = place(read_results(results), tables)
    for note in placement.unplaced:
        log.warning("not placed: %s", note)
    if placement.refusals:
        if strict:
            raise RefusedResultsError(placement.refusals)
        for refusal in placement.refusals:
            log.warning("refused: %s", refusal)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(runs_root) if runs_root is not None else Path.cwd()
    written = []
    for board, stem in BOARD_FILES.items():
        written += _write_board(board, stem, tables, placement, out_dir, root)
    return written


def _write_board(board: str, stem: str, tables: list[Table], placement: Placement, out_dir: Path, root: Path):
    tables = [t.on(board) for t in tables]
    rows = {t.id: placement.rows.get((board, t.id), []) for t in tables}
    plots, written = {}, []
    for table in tables:
        png = out_dir / f"{stem}_{table.id}.png"
        shown = board == "full" or rows[table.id]
        if shown and plot_table(table, rows[table.id], png, with_reference=board == "full"):
            plots[table.id] = png.name
            written.append(png)
        elif png.exists():
            png.unlink()  # a plot left from an earlier build would no longer match its board
    layers_png = out_dir / f"{stem}_layers.png"
    layers = plot_layer_use(_layer_profiles(tables, rows), layers_png)
    if layers is not None:
        written.append(layers)
    elif layers_png.exists():
        layers_png.unlink()  # stale: no frozen row with weights any more
    refused = [r for r in placement.refusals if (r.board if r.board in BOARD_FILES else "full") == board]
    text = render_board(
        board, tables, rows, plots=plots, link=lambda run: _link(run, out_dir, root), refused=refused,
        layers=layers.name if layers is not None else None,
    )  # fmt: skip
    md = out_dir / f"{stem}.md"
    md.write_text(text, encoding="utf-8", newline="\n")
    return [md, *written]


def _layer_profiles(tables: list[Table], rows: dict) -> list[tuple[str, dict[str, float]]]:
    """(footnote id and setup, weights) of every row with learned layer weights, in board order."""
    profiles = []
    for table in tables:
        for i, row in enumerate(rows[table.id], start=1):
            weights = row_layer_weights(row)
            if weights:
                profiles.append((f"{table.id}-{i}: {row.model}, {mode_label(row.mode, row.aggregation)}", weights))
    return profiles


def _link(run: Run, out_dir: Path, root: Path) -> str:
    run_dir = run.record.get("run_dir")
    if not run_dir:
        return "run folder not recorded"
    if PurePosixPath(run_dir).is_absolute() or Path(run_dir).is_absolute():
        return f"run folder `{run_dir}`"
    # records name run folders relative to their runs folder: the store's own folder when the run is
    # there, else the default ./runs beside the boards (a committed store's runs were made elsewhere)
    base = run.store.parent if (run.store.parent / run_dir).is_dir() else Path(root) / "runs"
    target = os.path.relpath(os.path.abspath(os.path.join(base, run_dir)), os.path.abspath(out_dir))
    target = PurePosixPath(*Path(target).parts).as_posix()
    links = [("run folder", target)]
    if run.record.get("layer_weights"):
        links.append(("layer weights", f"{target}/{LAYER_PNG}"))
    return ", ".join(f"[{text}](<{t}>)" if " " in t else f"[{text}]({t})" for text, t in links)
