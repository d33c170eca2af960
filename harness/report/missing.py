"""`python -m harness missing`: the model x task matrix of what still keeps each row off the main board.

States: ok, missing, limited (only --limit runs), partial/failed, outdated (older task version), newer,
non-standard (protocol overrides), n/a (the model cannot do the task). Rows are the model configurations found in
the results, plus every registered model that has no result at all (by name, default args).

Variants that a study sweep trains for itself (an ablation's checkpoints, named in its `train:` section) are evaluated
on that sweep's tasks only and are never meant for the main board; `study_rows` sets them apart so the matrix lists
what is actually missing.
"""
from __future__ import annotations

from pathlib import Path

from harness.report.board import MISSING, NA, OK, BoardCell, Row, build_board
from harness.report.index import load_results
from harness.report.schema import BoardSchema, BoardTask, BoardGroup, load_schema


def missing_matrix(root: str | Path, schema: BoardSchema | None = None, tasks: list[str] | None = None,
                   models: list[str] | None = None) -> tuple[list[str], list[Row]]:
    schema = schema or load_schema()
    if tasks:
        groups = [BoardGroup("selected", "selected", tuple(BoardTask(t) for t in tasks))]
        schema = BoardSchema(schema.path, schema.name, schema.version, groups, schema.formats, True)
    else:
        schema = BoardSchema(schema.path, schema.name, schema.version, schema.groups, schema.formats, True)
    refs = load_results(root)
    board = build_board(root, schema, refs)
    task_names = [b.name for b in board.tasks]
    rows = sorted(board.main + board.incomplete + board.unusable, key=lambda r: (r.label, r.data_kind))
    if models:
        rows = [r for r in rows if r.model_id in models]
    seen = {r.model_id for r in rows}
    from harness.registry import MODELS

    for name in (models or MODELS.names()):
        if name not in seen:
            row = Row(name, {}, name, "-")
            row.cells = {t: BoardCell(_capability_state(name, t)) for t in task_names}
            rows.append(row)
    return task_names, rows


def study_checkpoints(sweep_paths: list[Path]) -> dict[tuple[str, str, str], str]:
    """(model, model arg, checkpoint) of every variant a sweep trains -> that sweep's name."""
    from harness.studies.sweep_file import load_sweep

    out: dict[tuple[str, str, str], str] = {}
    for path in sweep_paths:
        sweep = load_sweep(path)
        for v in sweep.variants:
            if v.train is not None and v.train.model_arg:
                out.setdefault((v.model, v.train.model_arg, v.train.checkpoint), sweep.name)
    return out


def study_rows(rows: list[Row], studies: dict[tuple[str, str, str], str]) -> tuple[list[Row], dict[str, list[Row]]]:
    """(rows for the board, {sweep name: its trained variants' rows})."""
    keep, by_sweep = [], {}
    for r in rows:
        name = next((sweep for (model, arg, ckpt), sweep in studies.items()
                     if model == r.model_id and str(r.model_args.get(arg)) == ckpt), None)
        if name is None:
            keep.append(r)
        else:
            by_sweep.setdefault(name, []).append(r)
    return keep, by_sweep


def _capability_state(model: str, task: str) -> str:
    from harness.report.board import _capable

    return NA if _capable(model, task, []) is False else MISSING


def format_matrix(task_names: list[str], rows: list[Row]) -> str:
    header = ["model", "data", *task_names]
    table = [header]
    for r in rows:
        table.append([r.label, r.data_kind, *[_cell(r.cells[t]) for t in task_names]])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    todo = sum(1 for r in rows for t in task_names if r.cells[t].state not in (OK, NA))
    lines.append("")
    lines.append(f"{todo} (model, task) cells keep rows off the main board; "
                 f"{sum(1 for r in rows if r.complete)} of {len(rows)} rows are complete")
    return "\n".join(lines)


def _cell(cell: BoardCell) -> str:
    if cell.state == "outdated" and cell.ref is not None:
        return f"outdated (v{cell.ref.task_version})"
    return cell.state
