"""The leaderboard entry points kept for the CLI's run summary and older callers.

The board itself (schema, completeness gate, Markdown/CSV/LaTeX/HTML) lives in harness/report/{schema,board,render,
html,build}.py; `write_leaderboard` writes all of it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def format_value(metric: dict[str, Any]) -> str:
    """A metric for the terminal: value with its standard error or bootstrap interval."""
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


def write_leaderboard(root: str | Path, include_limited: bool = False) -> Path:
    """Write every board file under `root`; returns the Markdown one."""
    from harness.report.build import write_report

    write_report(root, include_limited=include_limited)
    return Path(root) / "leaderboard.md"
