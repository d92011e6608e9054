"""The NEST card tables as data: load and validate ``leaderboards/reference/*.yaml``.

A table says what it measures (dataset, split, metric, unit, direction), how the card scored it (the
convention, in words and as checkable requirements), which records belong to it and in which column,
and the card's own rows. Everything a board shows besides our results comes from these files, so a
wrong number is fixed in one place and re-rendered. Format (one file per table, ``id`` = file stem)::

    id: slurp                         # plots are <board>_<id>.png
    order: 40                         # position on a board
    title: SLURP — spoken language understanding
    dataset: SLURP test, every recording
    split: test                       # the split of our records shown in the cells
    metric: intent accuracy and SLU-F1
    unit: "%"                         # column defaults: unit, direction (max|min), decimals, scale
    direction: max
    scale: {fraction: 100}            # record convention.units -> multiplier into the table's unit
    bounds: {fraction: [0, null]}     # optional: where a recorded value may lie, per units (null: open);
                                      # default UNIT_BOUNDS (a fraction in [0, 1], BLEU in [0, 100], ...)
    convention: how the card scored it, in words
    source: [{title: ..., url: ...}]  # where the reference rows come from
    match: {task: slu}                # which records belong here (dotted paths into a record)
    requires: {convention.eval_recordings: all}   # a mismatch is refused, never placed
    select_on: {metric: intent_acc, direction: max}   # dev metric choosing among runs (default: 1st column)
    boards:                           # optional, per board (full|quickstart): replaces split, requires, columns
      quickstart: {split: test, requires: {sets.test.trial_list: sv-mini-test}}
    columns:
      - {id: intent_acc, label: Intent acc, metric: intent_acc, match: {}, requires: {}}
      - {id: callhome_2spk, label: ..., metric: der, split: callhome_2spk}   # a named test set of its own
    rows:                             # the card's rows
      - {checkpoint: nvidia/ssl_en_nest_large_v1.0, system: ..., mode: finetune, values: {intent_acc: 89.79}}

A value outside its units' bounds (a percentage recorded as a fraction) is refused like a convention
mismatch. A requirement is a plain value (equality; booleans only equal booleans), ``{one_of: [...]}``,
``{contains: "..."}`` (substring of a string) or ``{present: true}`` (the key exists, even if null).
A board override's ``split``, ``requires`` and ``columns`` replace the table's own on that board (a
quickstart names its evaluation sets and trial lists differently, and shows its own baseline columns);
keys it leaves out keep the table's. Card rows are only shown on the full board, so a board's own
columns need no card values.
A column with its own ``split`` shows that named test set (one run fills several columns: CALLHOME
by number of speakers); it applies to the records that scored that set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TABLES_DIR = Path(__file__).resolve().parents[2] / "leaderboards" / "reference"
# Where a recorded value may lie, by its convention.units; a table widens them where its metric can
# exceed them (WER and DER count insertions and false alarms, so they pass 1.0 on bad systems).
UNIT_BOUNDS: dict[str, tuple[float, float]] = {
    "fraction": (0.0, 1.0),
    "percent": (0.0, 100.0),
    "bleu": (0.0, 100.0),
    "count": (0.0, math.inf),
}
DIRECTIONS = ("max", "min")
BOARDS = ("full", "quickstart")
BOARD_KEYS = ("split", "requires", "columns")
MODES = ("finetune", "frozen")
_MISSING = object()
MISSING = _MISSING  # what ``lookup`` returns for an absent path


class TableSpecError(ValueError):
    """A reference table file is malformed; the message names the file and the field."""


def lookup(record: dict, path: str) -> Any:
    """The value at a dotted path (``convention.collar_per_side``), or ``_MISSING``."""
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


@dataclass(frozen=True)
class Requirement:
    """One condition on a record field; ``check`` says why a record fails it (None when it passes)."""

    path: str
    op: str  # equals | one_of | contains | present
    value: Any

    def check(self, record: dict) -> str | None:
        got = lookup(record, self.path)
        if got is _MISSING:
            return f"{self.path} is not recorded (required: {self.describe()})"
        if self.op == "present":
            return None
        if self.op == "equals" and _same(got, self.value):
            return None
        if self.op == "one_of" and any(_same(got, v) for v in self.value):
            return None
        if self.op == "contains" and isinstance(got, str) and self.value in got:
            return None
        return f"{self.path} is {got!r}, required: {self.describe()}"

    def matches(self, record: dict) -> bool:
        return self.check(record) is None

    def describe(self) -> str:
        if self.op == "one_of":
            return f"one of {list(self.value)!r}"
        if self.op == "contains":
            return f"a value containing {self.value!r}"
        if self.op == "present":
            return "it to be recorded"
        return repr(self.value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


@dataclass(frozen=True)
class Column:
    id: str
    label: str
    metric: str  # key in record["metrics"][split]
    unit: str
    direction: str
    decimals: int
    scale: dict[str, float]  # record convention.units -> multiplier
    bounds: dict[str, tuple[float, float]]  # record convention.units -> [low, high] of a recorded value
    match: tuple[Requirement, ...]
    requires: tuple[Requirement, ...]
    split: str | None = None  # a named test set of its own; None: the table's (or board's) split

    @property
    def header(self) -> str:
        arrow = "↑" if self.direction == "max" else "↓"
        return f"{self.label} ({self.unit}) {arrow}" if self.unit else f"{self.label} {arrow}"


@dataclass(frozen=True)
class ReferenceRow:
    checkpoint: str | None
    system: str
    mode: str
    values: dict[str, float]  # column id -> value in the table's unit
    source: str | None

    @property
    def model(self) -> str:
        return checkpoint_name(self.checkpoint) if self.checkpoint else "—"


@dataclass(frozen=True)
class Table:
    id: str
    order: int
    title: str
    dataset: str
    split: str
    metric: str
    convention: str
    sources: tuple[tuple[str, str], ...]  # (title, url)
    match: tuple[Requirement, ...]
    requires: tuple[Requirement, ...]
    select_metric: str
    select_direction: str
    columns: tuple[Column, ...]
    rows: tuple[ReferenceRow, ...]
    path: Path
    boards: dict[str, BoardOverride] = field(default_factory=dict)  # board -> its split/requires

    def column(self, column_id: str) -> Column:
        return next(c for c in self.columns if c.id == column_id)

    def on(self, board: str | None) -> Table:
        """The table as ``board`` shows it: the board's split, requirements and columns where it overrides
        them (``boards:``), else the table's own."""
        override = self.boards.get(board)
        if override is None:
            return self
        return replace(
            self,
            split=override.split if override.split is not None else self.split,
            requires=override.requires if override.requires is not None else self.requires,
            columns=override.columns if override.columns is not None else self.columns,
        )


@dataclass(frozen=True)
class BoardOverride:
    """A table's settings for one board; None keeps the table's own."""

    split: str | None
    requires: tuple[Requirement, ...] | None
    columns: tuple[Column, ...] | None = None


def checkpoint_name(checkpoint: str) -> str:
    """``nvidia/ssl_en_nest_large_v1.0`` and ``/x/ssl_en_nest_large_v1.0.nemo`` both name ``ssl_en_nest_large_v1.0``."""
    name = checkpoint.rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".nemo")] if name.endswith(".nemo") else name


def load_tables(folder: str | Path | None = None) -> list[Table]:
    """Every ``*.yaml`` in ``folder`` (default: the repository's ``leaderboards/reference``), in board order."""
    folder = Path(folder) if folder is not None else DEFAULT_TABLES_DIR
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise TableSpecError(f"no reference tables (*.yaml) in {folder}")
    tables = [load_table(f) for f in files]
    ids = [t.id for t in tables]
    if len(set(ids)) != len(ids):
        raise TableSpecError(f"{folder}: duplicate table ids {sorted(ids)}")
    return sorted(tables, key=lambda t: (t.order, t.id))


def load_table(path: str | Path) -> Table:
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = _Spec(path, data if isinstance(data, dict) else {})
    table_id = spec.text("id")
    if table_id != path.stem:
        raise TableSpecError(f"{path}: id {table_id!r} must equal the file name {path.stem!r}")
    defaults = {
        "unit": spec.text("unit", allow_empty=True),
        "direction": spec.choice("direction", DIRECTIONS),
        "decimals": spec.integer("decimals", 2),
        "scale": spec.scale("scale"),
        "bounds": spec.bounds("bounds", UNIT_BOUNDS),
    }
    columns = _columns(spec, defaults)
    col_ids = [c.id for c in columns]
    rows = tuple(_row(spec.sub("rows", i, r), col_ids) for i, r in enumerate(spec.seq("rows")))
    select = spec.mapping("select_on")
    sources = tuple(
        (spec.sub("source", i, s).text("title"), spec.sub("source", i, s).text("url"))
        for i, s in enumerate(spec.seq("source"))
    )
    return Table(
        id=table_id,
        order=spec.integer("order", 100),
        title=spec.text("title"),
        dataset=spec.text("dataset"),
        split=spec.text("split"),
        metric=spec.text("metric"),
        convention=" ".join(spec.text("convention").split()),
        sources=sources,
        match=spec.requirements("match"),
        requires=spec.requirements("requires"),
        select_metric=str(select.get("metric", columns[0].metric)),
        select_direction=_direction(path, select.get("direction", columns[0].direction)),
        columns=columns,
        rows=rows,
        path=path,
        boards=_boards(spec, defaults),
    )


def _columns(spec: _Spec, defaults: dict) -> tuple[Column, ...]:
    columns = tuple(_column(spec.sub("columns", i, c), defaults) for i, c in enumerate(spec.seq("columns")))
    if not columns:
        raise TableSpecError(f"{spec.where}: columns: at least one column is needed")
    col_ids = [c.id for c in columns]
    if len(set(col_ids)) != len(col_ids):
        raise TableSpecError(f"{spec.where}: columns: duplicate ids {col_ids}")
    return columns


def _boards(spec: _Spec, defaults: dict) -> dict[str, BoardOverride]:
    out = {}
    for board, data in sorted(spec.mapping("boards").items(), key=lambda kv: str(kv[0])):
        if board not in BOARDS:
            raise TableSpecError(f"{spec.where}: boards.{board}: unknown board; boards are {BOARDS}")
        where = f"{spec.where}: boards.{board}"
        if not isinstance(data, dict):
            raise TableSpecError(f"{where}: expected a mapping, got {data!r}")
        unknown = sorted(map(str, set(data) - set(BOARD_KEYS)))
        if unknown:
            raise TableSpecError(f"{where}: unknown keys {unknown}; a board may set {list(BOARD_KEYS)}")
        sub = _Spec(spec.path, data, where)
        out[board] = BoardOverride(
            split=sub.text("split") if "split" in data else None,
            requires=sub.requirements("requires") if "requires" in data else None,
            columns=_columns(sub, defaults) if "columns" in data else None,
        )
    return out


def _column(spec: _Spec, defaults: dict) -> Column:
    scale = spec.scale("scale", defaults["scale"])
    bounds = spec.bounds("bounds", defaults["bounds"])
    unbounded = sorted(set(scale) - set(bounds))
    if unbounded:
        raise TableSpecError(f"{spec.where}: bounds: units {unbounded} have no bounds; add them to bounds")
    return Column(
        id=spec.text("id"),
        label=spec.text("label"),
        metric=spec.text("metric"),
        unit=spec.text("unit", defaults["unit"], allow_empty=True),
        direction=spec.choice("direction", DIRECTIONS, defaults["direction"]),
        decimals=spec.integer("decimals", defaults["decimals"]),
        scale=scale,
        bounds=bounds,
        match=spec.requirements("match"),
        requires=spec.requirements("requires"),
        split=spec.text("split") if "split" in spec.data else None,
    )


def _row(spec: _Spec, col_ids: list[str]) -> ReferenceRow:
    values = spec.mapping("values")
    unknown = sorted(set(values) - set(col_ids))
    if unknown:
        raise TableSpecError(f"{spec.where}.values: unknown columns {unknown}; columns are {col_ids}")
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TableSpecError(f"{spec.where}.values.{k}: {v!r} is not a number")
    checkpoint = spec.data.get("checkpoint")
    return ReferenceRow(
        checkpoint=str(checkpoint) if checkpoint else None,
        system=spec.text("system"),
        mode=spec.choice("mode", MODES),
        values={k: float(v) for k, v in values.items()},
        source=spec.data.get("source"),
    )


def _direction(path: Path, value: Any) -> str:
    if value not in DIRECTIONS:
        raise TableSpecError(f"{path}: select_on.direction: {value!r} is not one of {DIRECTIONS}")
    return value


class _Spec:
    """Typed access to one YAML mapping, with errors that name the file and the field."""

    def __init__(self, path: Path, data: dict, where: str = ""):
        self.path, self.data = path, data
        self.where = where or str(path)

    def sub(self, key: str, index: int, data: Any) -> _Spec:
        where = f"{self.where}: {key}[{index}]"
        if not isinstance(data, dict):
            raise TableSpecError(f"{where}: expected a mapping, got {data!r}")
        return _Spec(self.path, data, where)

    def _get(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise TableSpecError(f"{self.where}: {key}: missing")
        return default

    def text(self, key: str, default: Any = _MISSING, allow_empty: bool = False) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise TableSpecError(f"{self.where}: {key}: expected a non-empty string, got {value!r}")
        return value

    def integer(self, key: str, default: Any = _MISSING) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TableSpecError(f"{self.where}: {key}: expected an integer, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if value not in choices:
            raise TableSpecError(f"{self.where}: {key}: {value!r} is not one of {choices}")
        return value

    def seq(self, key: str) -> list:
        value = self._get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise TableSpecError(f"{self.where}: {key}: expected a list, got {value!r}")
        return value

    def mapping(self, key: str, default: Any = None) -> dict:
        value = self._get(key, {} if default is None else default)
        if not isinstance(value, dict):
            raise TableSpecError(f"{self.where}: {key}: expected a mapping, got {value!r}")
        return value

    def scale(self, key: str, default: Any = _MISSING) -> dict[str, float]:
        value = self._get(key, default)
        if not isinstance(value, dict) or not value:
            raise TableSpecError(f"{self.where}: {key}: expected a mapping units -> multiplier, got {value!r}")
        for units, factor in value.items():
            if isinstance(factor, bool) or not isinstance(factor, (int, float)):
                raise TableSpecError(f"{self.where}: {key}.{units}: {factor!r} is not a number")
        return {str(k): float(v) for k, v in value.items()}

    def bounds(self, key: str, default: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        """``default`` updated with ``{units: [low, high]}``; ``null`` leaves that side open."""
        out = dict(default)
        for units, pair in self.mapping(key).items():
            numbers = isinstance(pair, list) and len(pair) == 2
            if not numbers or any(isinstance(v, bool) or not isinstance(v, (int, float, type(None))) for v in pair):
                raise TableSpecError(f"{self.where}: {key}.{units}: expected [low, high] (null: open), got {pair!r}")
            low = -math.inf if pair[0] is None else float(pair[0])
            high = math.inf if pair[1] is None else float(pair[1])
            if low > high:
                raise TableSpecError(f"{self.where}: {key}.{units}: {pair!r} is an empty range")
            out[str(units)] = (low, high)
        return out

    def requirements(self, key: str) -> tuple[Requirement, ...]:
        out = []
        for path, cond in sorted(self.mapping(key).items()):
            if isinstance(cond, dict):
                if len(cond) != 1 or next(iter(cond)) not in ("one_of", "contains", "present"):
                    raise TableSpecError(
                        f"{self.where}: {key}.{path}: use a value, {{one_of: [...]}}, {{contains: ...}} or "
                        f"{{present: true}}, got {cond!r}"
                    )
                op, value = next(iter(cond.items()))
                if op == "one_of" and not isinstance(value, list):
                    raise TableSpecError(f"{self.where}: {key}.{path}.one_of: expected a list")
                if op == "contains" and not isinstance(value, str):
                    raise TableSpecError(f"{self.where}: {key}.{path}.contains: expected a string")
                if op == "present" and value is not True:
                    raise TableSpecError(f"{self.where}: {key}.{path}.present: only `true` is meaningful")
                out.append(Requirement(str(path), op, tuple(value) if op == "one_of" else value))
            else:
                out.append(Requirement(str(path), "equals", cond))
        return tuple(out)
