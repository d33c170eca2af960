"""Which cells of a sweep already have a result, read from the result files alone (no model is built).

A result belongs to a cell when it is for the cell's model and task, every model arg the sweep names (base and
overrides) has the recorded value, the task protocol is the one the cell asks for (exactly, when the task is
registered; on the named keys otherwise), and seed, --limit and mini-or-full data agree. Model args the sweep does not
name are not compared (the adapter fills its defaults); if two results differ only there, the newest is used and the
status says so — pin the arg in `base.model_args` to remove the doubt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.report.board import NA
from harness.report.index import ResultRef, board_state, current_version, registered_task, same, standard_protocol
from harness.studies.sweep_file import Cell, Sweep

DONE = "done"


@dataclass
class CellStatus:
    cell: Cell
    state: str  # done | missing | partial | failed | limited | outdated | non-standard | invalid
    ref: ResultRef | None = None
    note: str = ""

    @property
    def done(self) -> bool:
        return self.state == DONE

    @property
    def settled(self) -> bool:
        """Nothing left to run: a usable result, or a recorded not-applicable one."""
        return self.state in (DONE, NA)


def model_registered(name: str) -> bool:
    from harness.registry import MODELS

    return name in MODELS


def expected_protocol(cell: Cell) -> tuple[dict[str, Any] | None, str]:
    """(protocol the registered task would use, problem). None when the task is not registered here."""
    if registered_task(cell.task.name) is None:
        return None, ""
    try:
        return standard_protocol(cell.task.name, cell.task_args), ""
    except (TypeError, ValueError) as exc:
        return None, str(exc)


def matches(ref: ResultRef, cell: Cell, protocol: dict[str, Any] | None) -> bool:
    if ref.model_id != cell.model or ref.task_name != cell.task.name:
        return False
    recorded = ref.model_args
    if any(k not in recorded or not same(recorded[k], v) for k, v in cell.model_args.items()):
        return False
    rec_protocol = ref.task.get("protocol") or {}
    if protocol is not None:
        if not same(rec_protocol, protocol):
            return False
    elif any(k not in rec_protocol or not same(rec_protocol[k], v) for k, v in cell.task_args.items()):
        return False
    data = ref.task.get("data", {})
    return (ref.data.get("seed", 0) == cell.seed and data.get("limit") == cell.limit
            and bool(data.get("mini")) == (cell.task.data_root is None))


def cell_status(cell: Cell, refs: list[ResultRef]) -> CellStatus:
    protocol, problem = expected_protocol(cell)
    if problem:
        return CellStatus(cell, "invalid", note=problem)
    version = current_version(cell.task.name)
    found = [r for r in refs if matches(r, cell, protocol)]
    notes = []
    if registered_task(cell.task.name) is None:
        notes.append(f"task {cell.task.name} is not registered")
    if not model_registered(cell.model):
        notes.append(f"model {cell.model} is not registered")
    if not found:
        return CellStatus(cell, "missing", note="; ".join(notes))
    if version is None:
        version = max(r.task_version for r in found)

    def state(r: ResultRef) -> str:
        s = board_state(r, version, None)
        return DONE if s in ("ok", "limited") and r.status == "complete" and r.task_version == version else s

    done = [r for r in found if state(r) == DONE]
    if done:
        done.sort(key=lambda r: r.created_at, reverse=True)
        distinct = {repr(sorted(r.model_args.items())) for r in done}
        if len(distinct) > 1:
            extra = sorted({k for r in done for k in r.model_args} - set(cell.model_args))
            notes.append(f"{len(done)} results differ in args the sweep does not pin ({', '.join(extra)}); "
                         "the newest is used")
        return CellStatus(cell, DONE, done[0], "; ".join(notes))
    best = sorted(found, key=lambda r: r.created_at, reverse=True)[0]
    return CellStatus(cell, state(best), best, "; ".join(notes))


def sweep_status(sweep: Sweep, refs: list[ResultRef]) -> list[CellStatus]:
    return [cell_status(c, refs) for c in sweep.cells]
