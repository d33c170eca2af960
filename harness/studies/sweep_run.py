"""Running a sweep: train what is missing, then evaluate every cell, in process or one cell per device.

Sequential and in process by default (the runner skips a cell whose complete result exists). With `devices`, each
cell runs as its own `python -m harness run` subprocess with CUDA_VISIBLE_DEVICES set to one device, one cell per
device at a time: the simple scheduler for many small runs. A failing cell is recorded and the others go on.
"""
from __future__ import annotations

import os
import queue
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import yaml

from harness.errors import HarnessError
from harness.results import safe_name
from harness.studies.sweep_file import Cell, Sweep, TrainSpec
from harness.studies.sweep_status import model_registered
from harness.report.index import registered_task
from harness.io import dumps_json

Log = Callable[[str], None]


class TrainError(HarnessError):
    """A variant's checkpoint could not be made: its cells are recorded as failed, the others still run."""


@dataclass
class SweepOptions:
    results_root: str = "results"
    cache_root: str | None = None
    device: str | None = None  # default: cpu in process, cuda under --devices
    devices: list[str] | None = None
    logs_root: str = "runs/sweep-logs"
    overwrite: bool = False
    progress: bool = True
    strict: bool = False
    train: bool = True


@dataclass
class CellOutcome:
    cell: Cell
    state: str  # complete | partial | failed (runner status) | skipped (already complete) | ran (subprocess) | error
    path: Path | None = None
    error: str = ""


@dataclass
class _TrainBook:
    """One training per checkpoint even when several cells (or devices) need it; a failure is remembered."""

    locks: dict[str, threading.Lock] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, checkpoint: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(checkpoint, threading.Lock())


def select_cells(sweep: Sweep, tasks: list[str] | None) -> list[Cell]:
    if not tasks:
        return list(sweep.cells)
    unknown = sorted(set(tasks) - {t.name for t in sweep.tasks})
    if unknown:
        raise HarnessError(f"--tasks {', '.join(unknown)}: not in sweep {sweep.name} "
                           f"(its tasks: {', '.join(t.name for t in sweep.tasks)})")
    return [c for c in sweep.cells if c.task.name in tasks]


def check_registered(sweep: Sweep, cells: list[Cell]) -> None:
    """Refuse to start when a task or model of the selected cells is not registered (before any training)."""
    tasks = sorted({c.task.name for c in cells if registered_task(c.task.name) is None})
    models = sorted({c.model for c in cells if not model_registered(c.model)})
    if tasks or models:
        what = [f"task {t}" for t in tasks] + [f"model {m}" for m in models]
        raise HarnessError(f"sweep {sweep.name} ({sweep.path}) needs {', '.join(what)}, not registered in this "
                           "installation; `--dry-run` shows the cells, `--tasks` runs a subset")


# ---------------------------------------------------------------------------------------------------------------
# Training hook
# ---------------------------------------------------------------------------------------------------------------
def ensure_checkpoint(spec: TrainSpec, log: Log, env: dict[str, str] | None = None,
                      output: TextIO | None = None) -> bool:
    """Run the train command when `spec.checkpoint` is missing; True when it trained. Raises TrainError."""
    ckpt = Path(spec.checkpoint)
    if ckpt.exists():
        return False
    log(f"[sweep] {ckpt} is missing: training it with {shlex.join(spec.command)}")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(list(spec.command), env=env, timeout=spec.timeout_s, stdin=subprocess.DEVNULL,
                              stdout=output, stderr=subprocess.STDOUT if output is not None else None)
    except FileNotFoundError as exc:
        raise TrainError(f"train command for {ckpt} cannot start: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise TrainError(f"train command for {ckpt} ran past its timeout of {spec.timeout_s} s") from exc
    if proc.returncode != 0:
        raise TrainError(f"train command for {ckpt} failed with exit status {proc.returncode}: "
                         f"{shlex.join(spec.command)}")
    if not ckpt.exists():
        raise TrainError(f"train command finished but did not write {ckpt}: {shlex.join(spec.command)}")
    log(f"[sweep] trained {ckpt}")
    return True


def _train_once(cell: Cell, book: _TrainBook, opts: SweepOptions, log: Log, env=None, output=None) -> None:
    spec = cell.variant.train
    if spec is None:
        return
    with book.lock(spec.checkpoint):
        if spec.checkpoint in book.failed:
            raise TrainError(book.failed[spec.checkpoint])
        if not opts.train:
            if not Path(spec.checkpoint).exists():
                raise TrainError(f"{spec.checkpoint} is missing and --no-train was given")
            return
        try:
            ensure_checkpoint(spec, log, env, output)
        except TrainError as exc:
            book.failed[spec.checkpoint] = str(exc)
            raise


# ---------------------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------------------
def run_spec(cell: Cell, opts: SweepOptions):
    from harness.runner import RunSpec

    return RunSpec(task=cell.task.name, model=cell.model, model_args=dict(cell.model_args),
                   task_args=dict(cell.task_args), data_root=cell.task.data_root, limit=cell.limit, seed=cell.seed,
                   batch_size=cell.batch_size, workers=cell.workers, device=opts.device or "cpu",
                   results_root=opts.results_root, cache_root=opts.cache_root, strict=opts.strict,
                   overwrite=opts.overwrite, progress=opts.progress)


def arg_text(value) -> str:
    """A model/task arg value for `--model-arg k=v` that the CLI's YAML parser reads back unchanged: plain text when
    it already reads back as itself, JSON otherwise (JSON is YAML)."""
    if isinstance(value, str) and value == value.strip() and value:
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return dumps_json(value, indent=None).strip()


def run_command(cell: Cell, opts: SweepOptions, device: str) -> list[str]:
    """The `python -m harness run ...` command line equivalent to one cell."""
    cmd = [sys.executable, "-m", "harness", "run", "--task", cell.task.name, "--model", cell.model,
           "--seed", str(cell.seed), "--results", opts.results_root, "--device", device, "--no-progress"]
    for k, v in cell.model_args.items():
        cmd += ["--model-arg", f"{k}={arg_text(v)}"]
    for k, v in cell.task_args.items():
        cmd += ["--task-arg", f"{k}={arg_text(v)}"]
    for flag, value in (("--data-root", cell.task.data_root), ("--limit", cell.limit),
                        ("--batch-size", cell.batch_size), ("--cache", opts.cache_root)):
        if value is not None:
            cmd += [flag, str(value)]
    if cell.workers:
        cmd += ["--workers", str(cell.workers)]
    if opts.overwrite:
        cmd.append("--overwrite")
    if opts.strict:
        cmd.append("--strict")
    return cmd


def run_sequential(cells: list[Cell], opts: SweepOptions, log: Log) -> list[CellOutcome]:
    from harness.runner import run

    book = _TrainBook()
    out = []
    for i, cell in enumerate(cells, 1):
        log(f"[sweep] cell {i}/{len(cells)}: {cell.name}")
        try:
            _train_once(cell, book, opts, log)
            result = run(run_spec(cell, opts), log=log)
            state = "skipped" if result.skipped else result.result.get("status", "complete")
            out.append(CellOutcome(cell, state, result.path))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken cell must not stop the sweep; it is reported
            log(f"[sweep] cell {cell.name} failed: {type(exc).__name__}: {exc}")
            out.append(CellOutcome(cell, "error", error=f"{type(exc).__name__}: {exc}"))
    return out


def log_path(opts: SweepOptions, sweep_name: str, cell: Cell) -> Path:
    name = f"{safe_name(cell.variant.name)}__{safe_name(cell.task.name)}.log"
    return Path(opts.logs_root) / safe_name(sweep_name) / name


def run_on_devices(sweep_name: str, cells: list[Cell], opts: SweepOptions, log: Log) -> list[CellOutcome]:
    """One worker thread per device pulls cells from a queue and runs each as a subprocess pinned to its device."""
    devices = list(opts.devices or [])
    if not devices:
        raise HarnessError("--devices needs at least one device id")
    device = opts.device or "cuda"
    todo: queue.Queue = queue.Queue()
    for c in cells:
        todo.put(c)
    book = _TrainBook()
    results: dict[int, CellOutcome] = {}
    order = {id(c): i for i, c in enumerate(cells)}
    lock = threading.Lock()

    def locked_log(msg: str) -> None:
        with lock:
            log(msg)

    def worker(dev: str) -> None:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": dev}
        while True:
            try:
                cell = todo.get_nowait()
            except queue.Empty:
                return
            path = log_path(opts, sweep_name, cell)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                try:
                    _train_once(cell, book, opts, locked_log, env, f)
                    cmd = run_command(cell, opts, device)
                    locked_log(f"[sweep] device {dev}: {cell.name} (log: {path})")
                    f.write("$ " + shlex.join(cmd) + "\n")
                    f.flush()
                    rc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=f,
                                        stderr=subprocess.STDOUT).returncode
                    outcome = CellOutcome(cell, "ran" if rc == 0 else "error", path,
                                          "" if rc == 0 else f"exit status {rc}; see {path}")
                except TrainError as exc:
                    outcome = CellOutcome(cell, "error", path, str(exc))
            if outcome.state == "error":
                locked_log(f"[sweep] device {dev}: {cell.name} failed: {outcome.error}")
            with lock:
                results[order[id(cell)]] = outcome

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in sorted(results)]
