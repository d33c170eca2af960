"""The board: one row per (model with its args, mini or full data), one cell per task of the schema, and the gate.

A row enters the MAIN board only when every task of the schema has a usable result (complete, not limited, at the
required task version, standard protocol; see harness.report.index). A task the model cannot do (its capabilities
lack what the task requires, both registered here) counts as "n/a" and does not block the row. Rows that miss any
task go to the separate "incomplete" section when they have at least one usable result (values shown only for
those), or are hidden when the schema says `incomplete: hide`; rows with nothing usable (only --limit runs, partial
or outdated results) appear only in `harness missing`. Mini-split and full-data results never share a row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report.index import (STATE_RANK, ResultRef, board_state, current_version, load_results, registered_task,
                                  standard_protocol)
from harness.report.schema import BoardSchema, BoardTask, load_schema

OK, MISSING, NA = "ok", "missing", "n/a"


@dataclass
class Column:
    task: str
    metric: str
    higher_is_better: bool | None
    unit: str | None = None

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"


@dataclass
class TaskBlock:
    spec: BoardTask
    version: int | None  # the version a result must have (None: unknown, any)
    registered: bool
    family: str
    columns: list[Column]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title or (f"{self.name}@v{self.version}" if self.version else self.name)


@dataclass
class BoardCell:
    state: str  # ok | missing | n/a | limited | partial | failed | outdated | newer | non-standard
    ref: ResultRef | None = None

    def metric(self, name: str) -> dict[str, Any] | None:
        if self.ref is None or self.state != OK:
            return None
        return self.ref.metrics.get(name)


@dataclass
class Row:
    model_id: str
    model_args: dict[str, Any]
    label: str
    data_kind: str
    cells: dict[str, BoardCell] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(c.state in (OK, NA) for c in self.cells.values())

    @property
    def args_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.model_args.items()) if v is not None)


@dataclass
class Board:
    schema: BoardSchema
    root: Path
    tasks: list[TaskBlock]
    main: list[Row]
    incomplete: list[Row]
    notes: list[str]
    unusable: list[Row] = field(default_factory=list)  # rows with no usable result at all (for `missing`)

    def groups(self) -> list[tuple[str, str, list[TaskBlock]]]:
        """(family, title, task blocks) in schema order."""
        by_name = {t.name: t for t in self.tasks}
        return [(g.family, g.title, [by_name[t.name] for t in g.tasks]) for g in self.schema.groups]

    def null_metrics(self) -> list[tuple[str, list[str]]]:
        """Board cells whose metric is recorded without a value, grouped by the recorded reason: [(reason, ["model
        task metric", ...])] in board order. The reports list them so that "null" is never read as a score."""
        grouped: dict[str, list[str]] = {}
        for row in self.main + self.incomplete:
            for block in self.tasks:
                for col in block.columns:
                    m = row.cells[block.name].metric(col.metric)
                    if m is not None and m.get("value") is None:
                        reason = str(m.get("reason") or "no reason recorded")
                        where = f"{row.model_id} {block.name} {col.metric}"
                        if where not in grouped.setdefault(reason, []):
                            grouped[reason].append(where)
        return list(grouped.items())

    def best(self, column: Column) -> float | None:
        """The best value of a column among main rows, by the metric's direction (None if no direction)."""
        if column.higher_is_better is None:
            return None
        values = []
        for row in self.main:
            m = row.cells[column.task].metric(column.metric)
            if m and m.get("value") is not None:
                values.append(m["value"])
        if len(values) < 2:
            return None
        return max(values) if column.higher_is_better else min(values)


# ---------------------------------------------------------------------------------------------------------------
def _columns(spec: BoardTask, refs: list[ResultRef]) -> list[Column]:
    """The task's metrics (schema list, else the task's own headline) with directions from the results."""
    cls = registered_task(spec.name)
    names = list(spec.metrics or (getattr(cls, "headline", ()) if cls else ()) or ())
    mine = sorted((r for r in refs if r.task_name == spec.name), key=lambda r: r.created_at, reverse=True)
    if not names and mine:
        names = mine[0].headline
    cols = []
    for name in names:
        found = next((r.metrics[name] for r in mine if name in r.metrics), {})
        cols.append(Column(spec.name, name, found.get("higher_is_better"), found.get("unit")))
    return cols


def _capable(model_id: str, task: str, refs: list[ResultRef]) -> bool | None:
    """Whether the model can do the task at all (None when either is not registered here)."""
    from harness.registry import MODELS

    cls = registered_task(task)
    if cls is None or model_id not in MODELS:
        return None
    try:
        caps = frozenset(getattr(MODELS.get(model_id), "capabilities", frozenset()))
    except Exception:  # noqa: BLE001
        return None
    return frozenset(getattr(cls, "requires", frozenset())) <= caps


def build_board(root: str | Path, schema: BoardSchema | None = None, refs: list[ResultRef] | None = None,
                include_limited: bool = False) -> Board:
    root = Path(root)
    schema = schema or load_schema()
    refs = load_results(root) if refs is None else refs
    notes: list[str] = []
    if include_limited:
        notes.append("--include-limited: results of --limit runs are counted as usable; this is not a valid board")
    blocks = []
    for group in schema.groups:
        for spec in group.tasks:
            registered = registered_task(spec.name) is not None
            current = current_version(spec.name)
            version = spec.version or current
            if spec.version and current and spec.version != current:
                notes.append(f"{schema.path.name} pins {spec.name}@v{spec.version}, but the registered task is "
                             f"v{current}: results at v{spec.version} are required until the board is bumped")
            if not registered:
                notes.append(f"task {spec.name} is not registered in this installation; it still counts for "
                             "completeness")
                if version is None:
                    version = max((r.task_version for r in refs if r.task_name == spec.name), default=None)
            blocks.append(TaskBlock(spec, version, registered, group.family, _columns(spec, refs)))

    protocols = {b.name: _standard(b.name) for b in blocks}
    rows: dict[tuple[str, str], Row] = {}
    for r in refs:
        if r.task_name not in protocols:
            continue
        key = (r.model_label, r.data_kind)
        rows.setdefault(key, Row(r.model_id, r.model_args, r.model_label, r.data_kind))
    for row in rows.values():
        for b in blocks:
            row.cells[b.name] = _pick(row, b, refs, protocols[b.name], include_limited)
    ordered = sorted(rows.values(), key=lambda r: (r.data_kind, r.label))
    main = [r for r in ordered if r.complete]
    incomplete = [r for r in ordered if not r.complete and any(c.state == OK for c in r.cells.values())]
    main = _rank(main, blocks)
    hidden = [r for r in ordered if not r.complete and r not in incomplete]
    return Board(schema, root, blocks, main, incomplete if schema.show_incomplete else [], notes, hidden)


def _standard(task: str) -> dict[str, Any] | None:
    try:
        return standard_protocol(task)
    except (TypeError, ValueError):
        return None


def _pick(row: Row, block: TaskBlock, refs: list[ResultRef], protocol, include_limited: bool) -> BoardCell:
    mine = [r for r in refs if r.task_name == block.name and r.model_label == row.label
            and r.data_kind == row.data_kind]
    if not mine:
        return BoardCell(NA if _capable(row.model_id, block.name, refs) is False else MISSING)
    graded = [(board_state(r, block.version, protocol), r) for r in mine]
    if include_limited:
        graded = [("ok" if s == "limited" else s, r) for s, r in graded]
    graded.sort(key=lambda sr: (STATE_RANK.get(sr[0], 99), _neg(sr[1].created_at)))
    state, ref = graded[0]
    return BoardCell(state, ref)


def _neg(text: str) -> tuple[int, ...]:
    """A sort key that orders ISO timestamps newest first."""
    return tuple(-ord(c) for c in text)


def _rank(rows: list[Row], blocks: list[TaskBlock]) -> list[Row]:
    """Main rows ordered by the board's first metric that has a direction (best first), then by label."""
    for b in blocks:
        for col in b.columns:
            if col.higher_is_better is None:
                continue

            def key(row: Row, col=col) -> tuple:
                m = row.cells[col.task].metric(col.metric)
                v = m.get("value") if m else None
                if v is None:
                    return (1, 0.0, row.label)
                return (0, -v if col.higher_is_better else v, row.label)

            return sorted(rows, key=key)
    return rows
