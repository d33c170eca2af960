"""Ablation tables: every variant of a sweep against its default, with a PAIRED bootstrap interval of the difference.

For a metric with per-sample values (samples.jsonl: psnr_frame, ssim, bpp, ...), the difference variant - default is
taken per shared sample id and its mean gets a paired percentile-bootstrap 95% interval (harness.stats): "better"
is claimed only when the interval excludes 0 in the metric's good direction. Set-level metrics (codebook usage,
pooled PSNR, compression ratio) have no per-sample values: their difference is shown without an interval.
"""
from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report.index import ResultRef
from harness.stats import paired_difference
from harness.studies.sweep_file import Sweep
from harness.studies.sweep_status import CellStatus, sweep_status

BOOTSTRAP_ITERS = 2000


@dataclass
class AblationEntry:
    task: str
    variant: str
    is_default: bool
    metric: str
    higher_is_better: bool | None
    state: str  # the variant's cell state (done, missing, ...)
    value: float | None = None
    default_value: float | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_paired: int = 0
    paired: bool = False
    verdict: str = ""  # better | worse | n.s. | higher | lower | set-level | ""
    path: Path | None = None


@dataclass
class AblationTable:
    sweep: Sweep
    tasks: list[str]
    variants: list[str]
    metrics: dict[str, list[str]]  # task -> metrics
    entries: list[AblationEntry]
    statuses: list[CellStatus]

    def get(self, task: str, variant: str, metric: str) -> AblationEntry | None:
        return next((e for e in self.entries if (e.task, e.variant, e.metric) == (task, variant, metric)), None)

    @property
    def has_results(self) -> bool:
        return any(s.done for s in self.statuses)


def read_samples(path: Path) -> dict[str, dict[str, Any]]:
    """sample id -> its row in samples.jsonl (rows with an error are left out)."""
    rows = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if "error" not in row and "sample_id" in row:
                        rows[str(row["sample_id"])] = row
    except (OSError, ValueError):
        return {}
    return rows


def number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def expand_metrics(patterns: list[str], available: list[str]) -> list[str]:
    """Metric names for the patterns, in pattern order (fnmatch; a plain name is kept even if no result has it)."""
    out: list[str] = []
    for p in patterns:
        hits = [m for m in available if fnmatch.fnmatchcase(m, p)] if any(c in p for c in "*?[") else [p]
        out += [m for m in hits if m not in out]
    return out


def paired(variant: ResultRef, default: ResultRef, metric: str, cache: dict) -> dict[str, float] | None:
    """Paired bootstrap of variant - default over their shared samples with a numeric value of `metric`."""
    def samples(ref: ResultRef):
        key = str(ref.path)
        if key not in cache:
            cache[key] = read_samples(ref.path.parent / "samples.jsonl")
        return cache[key]

    a_rows, b_rows = samples(variant), samples(default)
    shared = sorted(set(a_rows) & set(b_rows))
    pairs = [(number(a_rows[i].get(metric)), number(b_rows[i].get(metric))) for i in shared]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        return None
    a, b = zip(*pairs)
    return paired_difference(a, b, iters=BOOTSTRAP_ITERS, seed=0)


def verdict(low: float | None, high: float | None, higher_is_better: bool | None) -> str:
    if low is None or high is None:
        return "n.s."
    if low <= 0 <= high:
        return "n.s."
    up = low > 0
    if higher_is_better is None:
        return "higher" if up else "lower"
    return "better" if up == higher_is_better else "worse"


def build_ablation(sweep: Sweep, refs: list[ResultRef]) -> AblationTable:
    if sweep.default is None:
        raise ValueError(f"sweep {sweep.name} names no default variant: add `default:` to compare against it")
    statuses = sweep_status(sweep, refs)
    by_cell = {(s.cell.variant.name, s.cell.task.name): s for s in statuses}
    variants = [v.name for v in sweep.variants]
    tasks = [t.name for t in sweep.tasks]
    entries: list[AblationEntry] = []
    metrics: dict[str, list[str]] = {}
    cache: dict[str, dict] = {}
    for task in tasks:
        done = [by_cell[(v, task)].ref for v in variants if by_cell[(v, task)].done]
        default_status = by_cell[(sweep.default.name, task)]
        default_ref = default_status.ref if default_status.done else None
        available = list(dict.fromkeys(k for r in done for k in r.metrics))
        patterns = sweep.metrics.get(task) or (default_ref.headline if default_ref else
                                               (done[0].headline if done else []))
        metrics[task] = expand_metrics(patterns, available)
        for v in variants:
            st = by_cell[(v, task)]
            ref = st.ref if st.done else None
            for metric in metrics[task]:
                e = _entry(task, v, v == sweep.default.name, metric, st.state, ref, default_ref, done, cache)
                entries.append(e)
    return AblationTable(sweep, tasks, variants, metrics, entries, statuses)


def _entry(task, variant, is_default, metric, state, ref, default_ref, done, cache) -> AblationEntry:
    direction = next((r.metrics[metric].get("higher_is_better") for r in done if metric in r.metrics), None)
    e = AblationEntry(task, variant, is_default, metric, direction, state, path=ref.path if ref else None)
    if ref is None:
        return e
    e.value = number((ref.metrics.get(metric) or {}).get("value"))
    if default_ref is None or is_default:
        return e
    e.default_value = number((default_ref.metrics.get(metric) or {}).get("value"))
    d = paired(ref, default_ref, metric, cache)
    if d is not None:
        e.paired, e.n_paired, e.diff = True, d["n"], number(d["diff"])
        e.ci_low, e.ci_high = d.get("ci_low"), d.get("ci_high")
        e.verdict = verdict(e.ci_low, e.ci_high, direction)
    elif e.value is not None and e.default_value is not None:
        e.diff, e.verdict = e.value - e.default_value, "set-level"
    return e
