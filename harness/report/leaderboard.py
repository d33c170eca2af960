"""The leaderboard, built only from result files: one table per task, grouped by task family.

For each (model id, model args, task) the newest complete result at the task's newest version is shown; limited
(--limit) runs never enter the board. A "not_applicable" result (e.g. a text-only protocol for a model without
language) shows "n/a" in every metric cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.io import write_text
from harness.results import iter_results

NOT_APPLICABLE = "not_applicable"


@dataclass
class Entry:
    path: Path
    data: dict[str, Any]

    @property
    def model_label(self) -> str:
        m = self.data["model"]
        args = ", ".join(f"{k}={v}" for k, v in sorted(m.get("args", {}).items()) if v is not None)
        return f"{m['id']} ({args})" if args else m["id"]


def collect(root: str | Path, include_limited: bool = False) -> list[Entry]:
    """The newest eligible result per (task, model label), at each task's newest version."""
    entries = [Entry(p, d) for p, d in iter_results(root)
               if d.get("status") in ("complete", NOT_APPLICABLE)
               and (include_limited or not d["task"]["data"].get("limited"))]
    newest_version: dict[str, int] = {}
    for e in entries:
        t = e.data["task"]
        newest_version[t["name"]] = max(newest_version.get(t["name"], 0), t["version"])
    best: dict[tuple[str, str], Entry] = {}
    for e in entries:
        t = e.data["task"]
        if t["version"] != newest_version[t["name"]]:
            continue
        key = (t["name"], e.model_label)
        if key not in best or e.data["created_at"] > best[key].data["created_at"]:
            best[key] = e
    return sorted(best.values(), key=lambda e: (e.data["task"]["family"], e.data["task"]["name"], e.model_label))


def headline(entry: Entry) -> list[str]:
    return entry.data["task"].get("headline") or [k for k in entry.data["metrics"] if "/" not in k][:6]


def format_value(metric: dict[str, Any]) -> str:
    v = metric.get("value")
    if v is None:
        return "n/a"
    s = f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    if metric.get("stderr") is not None:
        s += f" ± {metric['stderr']:.2g}"
    elif metric.get("ci_low") is not None:
        s += f" [{metric['ci_low']:.4g}, {metric['ci_high']:.4g}]"
    return s


def arrow(metric: dict[str, Any]) -> str:
    hib = metric.get("higher_is_better")
    return "↑" if hib is True else "↓" if hib is False else ""


def task_table(entries: list[Entry], root: Path) -> pd.DataFrame:
    cols = list(dict.fromkeys(k for e in entries for k in headline(e)))
    rows = []
    for e in entries:
        row = {"model": e.model_label}
        for k in cols:
            metric = e.data["metrics"].get(k)
            cell = "n/a" if e.data["status"] == NOT_APPLICABLE else format_value(metric) if metric else "–"
            row[f"{k} {arrow(metric) if metric else ''}".strip()] = cell
        row["n"] = e.data["task"]["data"]["n_evaluated"]
        row["data"] = "mini" if e.data["task"]["data"]["mini"] else "full"
        row["result"] = str(e.path.relative_to(root))
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(root: str | Path, include_limited: bool = False) -> str:
    root = Path(root)
    entries = collect(root, include_limited)
    out = ["# PyraTok Bench leaderboard", "",
           "Built by `python -m harness report` from the result files under this folder only. "
           "↑/↓: higher/lower is better; ± is a standard error, [a, b] a 95% bootstrap interval.", ""]
    if not entries:
        out.append("_No complete results yet._")
        return "\n".join(out) + "\n"
    families: dict[str, dict[str, list[Entry]]] = {}
    for e in entries:
        t = e.data["task"]
        families.setdefault(t["family"], {}).setdefault(f"{t['name']}@v{t['version']}", []).append(e)
    for family, tasks in families.items():
        out += [f"## {family.capitalize()}", ""]
        for task, es in tasks.items():
            out += [f"### {task}", "", task_table(es, root).to_markdown(index=False), ""]
    return "\n".join(out)


def write_leaderboard(root: str | Path, include_limited: bool = False) -> Path:
    path = Path(root) / "leaderboard.md"
    write_text(path, markdown(root, include_limited))
    return path
