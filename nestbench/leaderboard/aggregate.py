"""Records -> table cells: which table and column a result belongs to, whether its convention fits,
and how several runs of one cell become one number.

A record belongs to a table when it satisfies the table's ``match`` (e.g. ``task: asr`` and
``convention.dataset: mcv-16.1``) and to a column when it also satisfies the column's ``match``
(e.g. ``convention.language: de``); the cell value is ``metrics[<split>][<column metric>]``
times the column's scale for the record's ``convention.units``. A record that belongs to a table
but breaks one of its ``requires`` (a normalised WER in the punctuation-and-capitalisation table,
another collar), or whose value is not a finite number within its units' bounds (89.79 recorded as
a fraction), is refused with every reason, never placed. Our rows are keyed by encoder
checkpoint, mode (and frozen aggregation), spec and overrides other than the seed, so the seeds of
one setup share a row. The split, ``requires`` and columns are the record's board's where the table
overrides them for that board (``Table.on``), else the table's.

The rule for several runs in one cell, stated on every board: with runs of >= 2 seeds, mean ±
sample std over seeds (each seed represented by its run with the best dev selection metric); with
one seed, the run with the best dev selection metric (ties: the earliest finished). Runs are chosen
on dev, never on test.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .tables import BOARDS, MISSING, Column, ReferenceRow, Table, checkpoint_name, is_missing, lookup

_SEED_OVERRIDE = re.compile(r"^\s*Experiment\.seed\s*=")


@dataclass(frozen=True)
class Run:
    """One record of a results store, with the store it came from (for messages)."""

    record: dict
    store: Path

    @property
    def label(self) -> str:
        return f"{self.record.get('experiment', '?')}/{self.record.get('run_id', '?')}"

    @property
    def sort_key(self) -> tuple:
        r = self.record
        return (str(r.get("finished_at", "")), str(r.get("experiment", "")), str(r.get("run_id", "")), _canonical(r))


@dataclass(frozen=True)
class Refusal:
    """A result that was not placed, and every reason why."""

    store: Path
    run: str
    board: str | None
    table: str | None  # table id; None when no board can take it
    reasons: tuple[str, ...]
    table_title: str = ""

    def __str__(self) -> str:
        where = f"table '{self.table}' ({self.table_title})" if self.table else "every board"
        return f"{self.store}: run {self.run} refused from {where}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class Placed:
    """One run placed in one table: its values (in the table's units) and its dev selection score."""

    run: Run
    values: dict[str, float]
    dev_score: float


@dataclass(frozen=True)
class Cell:
    value: float
    std: float | None  # set when the value is a mean over >= 2 seeds
    rule: str  # "best-dev" | "mean-std"
    used: tuple[Run, ...]
    seeds: tuple
    n_candidates: int


@dataclass(frozen=True)
class OurRow:
    model: str
    checkpoint: str
    mode: str  # finetune | frozen
    aggregation: str | None
    spec: str
    overrides: tuple[str, ...]
    cells: dict[str, Cell]
    runs: tuple[Run, ...]  # every run placed in this row, in order

    @property
    def used(self) -> tuple[Run, ...]:
        """The runs behind at least one cell, in order."""
        ids = {id(r) for c in self.cells.values() for r in c.used}
        return tuple(r for r in self.runs if id(r) in ids)


@dataclass
class Placement:
    rows: dict[tuple[str, str], list[OurRow]] = field(default_factory=dict)  # (board, table id) -> rows
    refusals: list[Refusal] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)


def place(runs: list[Run], tables: list[Table]) -> Placement:
    """Check every run against every table and aggregate the accepted ones into rows."""
    out = Placement()
    accepted: dict[tuple[str, str], list[Placed]] = defaultdict(list)
    for run in sorted(fold_evaluations(_dedupe(runs)), key=lambda r: r.sort_key):
        board = run.record.get("board")
        if board not in BOARDS:
            why = f"board is {board!r}, expected one of {BOARDS}"
            out.refusals.append(Refusal(run.store, run.label, None, None, (why,)))
            continue
        homes = 0
        for table in (t.on(board) for t in tables):
            result = _place_one(run, table)
            if result is None:
                continue
            homes += 1
            if isinstance(result, Refusal):
                out.refusals.append(result)
            elif isinstance(result, str):
                out.unplaced.append(result)
            else:
                accepted[(board, table.id)].append(result)
        if not homes:
            out.unplaced.append(f"{run.store}: run {run.label} (task {run.record.get('task')!r}) matches no table")
    by_id = {t.id: t for t in tables}
    for (board, table_id), placed in sorted(accepted.items()):
        out.rows[(board, table_id)] = _rows(placed, by_id[table_id].on(board))
    return out


def reference_for(table: Table, row: OurRow) -> ReferenceRow | None:
    """The card row a result is compared with: the same checkpoint's, else the table's only card row."""
    same = [r for r in table.rows if r.checkpoint and checkpoint_name(r.checkpoint) == checkpoint_name(row.checkpoint)]
    if same:
        return same[0]
    return table.rows[0] if len(table.rows) == 1 else None


def _place_one(run: Run, table: Table) -> Placed | Refusal | str | None:
    """None: not this table's; str: this table's but no column fits; else placed or refused."""
    rec = run.record
    if not all(m.matches(rec) for m in table.match):
        return None
    scored = rec.get("metrics") if isinstance(rec.get("metrics"), dict) else {}
    columns = [
        c for c in table.columns if all(m.matches(rec) for m in c.match) and (c.split is None or c.split in scored)
    ]
    if not columns:
        conditions = "; ".join(
            " and ".join(f"{m.path} = {m.value!r}" for m in c.match) or "(none)" for c in table.columns
        )
        return f"{run.store}: run {run.label} matches table '{table.id}' but none of its columns ({conditions})"
    reasons = [why for r in table.requires if (why := r.check(rec))]
    reasons += _row_fields(rec)
    values: dict[str, float] = {}
    for col in columns:
        reasons += [f"column {col.id}: {why}" for r in col.requires if (why := r.check(rec))]
        value, why = _value(rec, col.split or table.split, col)
        if why:
            reasons.append(f"column {col.id}: {why}")
        else:
            values[col.id] = value
    dev = _metric(rec, "dev", table.select_metric)
    if is_missing(dev):
        reasons.append(f"metrics.dev.{table.select_metric} is not recorded: runs are chosen on dev")
    elif not _is_number(dev):
        reasons.append(f"metrics.dev.{table.select_metric} is {dev!r}, not a finite number")
    else:
        same = [c for c in table.columns if c.metric == table.select_metric]
        reasons += [why for c in same[:1] if (why := _out_of_bounds(rec, "dev", c))]
    if reasons:
        return Refusal(run.store, run.label, rec["board"], table.id, tuple(dict.fromkeys(reasons)), table.title)
    return Placed(run, values, float(dev))


def _value(rec: dict, split: str, col: Column) -> tuple[float, str | None]:
    path = f"metrics.{split}.{col.metric}"
    raw = _metric(rec, split, col.metric)
    if not _is_number(raw):
        return math.nan, f"{path} is {'not recorded' if is_missing(raw) else f'{raw!r}, not a finite number'}"
    units = lookup(rec, "convention.units")
    if is_missing(units):
        return math.nan, f"convention.units is not recorded; this column reads {sorted(col.scale)}"
    if not isinstance(units, str) or units not in col.scale:
        return math.nan, f"convention.units is {units!r}; this column converts only {sorted(col.scale)} to {col.unit!r}"
    why = _out_of_bounds(rec, split, col)
    return (math.nan, why) if why else (float(raw) * col.scale[units], None)


def _metric(rec: dict, split: str, metric: str):
    """``rec["metrics"][split][metric]``, or missing; not a dotted lookup: metric names hold dots (min_dcf_0.01)."""
    metrics = rec.get("metrics")
    node = metrics.get(split) if isinstance(metrics, dict) else None
    return node[metric] if isinstance(node, dict) and metric in node else MISSING


def _out_of_bounds(rec: dict, split: str, col: Column) -> str | None:
    """Why a recorded number cannot be in its units (a percentage recorded as a fraction), or None."""
    path = f"metrics.{split}.{col.metric}"
    value, units = _metric(rec, split, col.metric), lookup(rec, "convention.units")
    if not isinstance(units, str) or units not in col.bounds:
        return None  # refused for its units already
    low, high = col.bounds[units]
    if low <= value <= high:
        return None
    return f"{path} is {value!r}, outside [{low:g}, {high:g}] for convention.units {units!r}"


def _row_fields(rec: dict) -> list[str]:
    reasons = []
    if not isinstance(lookup(rec, "encoder.checkpoint"), str):
        reasons.append("encoder.checkpoint is not recorded")
    mode = lookup(rec, "encoder.mode")
    if mode not in ("finetune", "frozen"):
        got = "not recorded" if is_missing(mode) else f"{mode!r}"
        reasons.append(f"encoder.mode is {got}, expected 'finetune' or 'frozen'")
    if is_missing(lookup(rec, "seed")):
        reasons.append("seed is not recorded")
    return reasons


def _rows(placed: list[Placed], table: Table) -> list[OurRow]:
    groups: dict[tuple, list[Placed]] = defaultdict(list)
    for p in placed:
        groups[_row_key(p.run.record)].append(p)
    rows = []
    for key in sorted(groups, key=sortable):
        members = groups[key]
        enc = members[0].run.record["encoder"]
        cells = {}
        for col in table.columns:
            candidates = [p for p in members if col.id in p.values]
            if candidates:
                cells[col.id] = _cell(candidates, col.id, table.select_direction)
        rows.append(
            OurRow(
                model=encoder_label(enc),
                checkpoint=enc["checkpoint"],
                mode=enc["mode"],
                aggregation=enc.get("aggregation") if enc["mode"] == "frozen" else None,
                spec=key[4],
                overrides=key[5],
                cells=cells,
                runs=tuple(p.run for p in members),
            )
        )
    return rows


def row_layer_weights(row: OurRow) -> dict[str, float] | None:
    """The learned layer weights behind a row: those of its used run, the mean over its seeds' runs
    when several are used (as its cells are); None when none of them recorded weights."""
    profiles = [run.record.get("layer_weights") for run in row.used]
    weights = [p["weights"] for p in profiles if isinstance(p, dict) and isinstance(p.get("weights"), dict)]
    if not weights:
        return None
    layers = sorted({k for w in weights for k in w}, key=int)
    return {k: statistics.fmean(w[k] for w in weights if k in w) for k in layers}


def _row_key(rec: dict) -> tuple:
    enc = rec["encoder"]
    identity = enc.get("sha256") or enc["checkpoint"]
    aggregation = enc.get("aggregation") if enc["mode"] == "frozen" else None
    overrides = tuple(o for o in rec.get("overrides") or () if not _SEED_OVERRIDE.match(o))
    spec = spec_name(rec.get("spec"))
    return (encoder_label(enc), identity, enc["mode"], aggregation, spec, overrides)


def encoder_label(enc: dict) -> str:
    """The checkpoint's name, and how the encoder started when not from all of its weights."""
    init = enc.get("init", "checkpoint")
    name = checkpoint_name(enc["checkpoint"])
    return name if init == "checkpoint" else f"{name} ({'random init' if init == 'random' else 'partial init'})"


def _cell(candidates: list[Placed], col_id: str, direction: str) -> Cell:
    by_seed: dict = defaultdict(list)
    for p in candidates:
        by_seed[p.run.record.get("seed")].append(p)
    seeds = tuple(sorted(by_seed, key=sortable))
    picks = [_best(by_seed[s], direction) for s in seeds]
    if len(picks) >= 2:
        values = [p.values[col_id] for p in picks]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        return Cell(mean, std, "mean-std", _runs(picks), seeds, len(candidates))
    return Cell(picks[0].values[col_id], None, "best-dev", _runs(picks), seeds, len(candidates))


def _best(placed: list[Placed], direction: str) -> Placed:
    sign = -1.0 if direction == "max" else 1.0
    return min(placed, key=lambda p: (sign * p.dev_score, p.run.sort_key))


def _runs(picks: list[Placed]) -> tuple[Run, ...]:
    return tuple(sorted((p.run for p in picks), key=lambda r: r.sort_key))


def spec_name(spec: str | None) -> str:
    """The spec as a repository path (``experiments/...``) even when the record holds an absolute path."""
    if not spec:
        return "—"
    parts = PurePosixPath(spec).parts
    if "experiments" in parts:
        cut = len(parts) - 1 - parts[::-1].index("experiments")
        return str(PurePosixPath(*parts[cut:]))
    return spec


def fold_evaluations(runs: list[Run]) -> list[Run]:
    """``nestbench evaluate`` records (``evaluation_of``) add their sets to the run they evaluated, so
    one model fills several columns; a set the run already scored keeps the run's own numbers. An
    evaluation whose run is in none of the stores stays on its own (and is refused for lacking dev)."""
    originals = {
        (r.record.get("experiment"), r.record.get("run_id")): r for r in runs if "evaluation_of" not in r.record
    }
    added: dict[tuple, dict] = defaultdict(lambda: {"metrics": {}, "sets": {}})
    alone = []
    for run in sorted(runs, key=lambda r: r.sort_key):
        target = run.record.get("evaluation_of")
        if target is None:
            continue
        key = (run.record.get("experiment"), target)
        if key not in originals:
            alone.append(run)
            continue
        added[key]["metrics"].update(run.record.get("metrics") or {})
        added[key]["sets"].update(run.record.get("sets") or {})
    out = []
    for key, run in originals.items():
        if key in added:
            record = dict(run.record)
            record["metrics"] = {**added[key]["metrics"], **(record.get("metrics") or {})}
            record["sets"] = {**added[key]["sets"], **(record.get("sets") or {})}
            run = Run(record, run.store)
        out.append(run)
    return out + alone


def _dedupe(runs: list[Run]) -> list[Run]:
    """The same record read from two stores (a run's own store and a committed copy) counts once."""
    seen: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: (str(r.store), r.sort_key)):
        seen.setdefault(_canonical(run.record), run)
    return list(seen.values())


def _canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def sortable(value) -> tuple:
    """Sort keys that mix None, numbers and strings without comparing across types."""
    if isinstance(value, tuple):
        return tuple(sortable(v) for v in value)
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
