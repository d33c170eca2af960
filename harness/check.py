"""`check-data`: verify a real or mini copy of a data set before any model time is spent.

It runs the same reader and loader the tasks use: every split/annotation line is parsed (malformed lines are named
as file:line), every referenced file must exist, and every item is decoded. Nothing is fixed or skipped silently;
the report lists each problem with its path.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from harness.errors import DataError
from harness.task import Sample, SampleList


@dataclass
class CheckReport:
    target: str
    root: str
    listed: int = 0
    decoded: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)  # reader problems: missing files, malformed lines
    undecodable: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.undecodable

    def summary(self) -> str:
        lines = [f"check-data {self.target} at {self.root}: {self.listed} items listed, {self.decoded} decoded, "
                 f"{len(self.rejected)} rejected by the reader, {len(self.undecodable)} undecodable "
                 f"({self.seconds:.1f} s) -> {'OK' if self.ok else 'PROBLEMS'}"]
        for r in self.rejected:
            lines.append(f"  rejected     {r['error']}")
        for r in self.undecodable:
            lines.append(f"  undecodable  {r['error']}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def check_items(target: str, root: Path, listing: SampleList, load: Callable[[Sample], Any] | None,
                strict: bool = False, progress: bool = True) -> CheckReport:
    """Decode every listed item with `load` (None: only the listing is checked)."""
    t0 = time.perf_counter()
    report = CheckReport(target, str(root), listed=len(listing.samples), rejected=list(listing.rejected))
    if strict and report.rejected:
        raise DataError(report.rejected[0].get("path", str(root)), report.rejected[0]["error"])
    if load is not None:
        for sample in tqdm(listing.samples, desc=f"check {target}", disable=not progress, unit="item"):
            try:
                load(sample)
                report.decoded += 1
            except DataError as exc:
                report.undecodable.append({"sample_id": sample.id, "path": exc.path, "error": str(exc)})
                if strict:
                    raise
            except Exception as exc:  # noqa: BLE001 - any reader failure is a problem of this item
                err = f"{sample.path or sample.id}: {type(exc).__name__}: {exc}"
                report.undecodable.append({"sample_id": sample.id, "path": sample.path or "", "error": err})
                if strict:
                    raise DataError(sample.path or sample.id, str(exc)) from exc
    report.seconds = time.perf_counter() - t0
    return report


def check_task(task_name: str, root: str | Path | None, strict: bool = False, progress: bool = True,
               overrides: dict[str, Any] | None = None) -> CheckReport:
    """Check the split a task evaluates, with the task's own reader and loader."""
    from harness.runner import build_task, resolve_data_root

    task = build_task(task_name, overrides)
    data_root, _ = resolve_data_root(task, str(root) if root else None)
    return check_items(task_name, data_root, task.samples(data_root), task.load, strict, progress)


def check_dataset(name: str, root: str | Path | None, strict: bool = False, progress: bool = True) -> CheckReport:
    """Check every split and annotation file of a data set (Dataset.check_listing) and decode every media item."""
    from harness.dataset import ensure_mini, get_dataset

    ds = get_dataset(name)
    data_root = Path(root).expanduser().resolve() if root else ensure_mini(name)
    listing = ds.check_listing(data_root)
    return check_items(name, data_root, listing, ds.check_load, strict, progress)
