"""The board schema (harness/report/board.yaml by default): task groups, their order, and display formats.

The schema only groups, orders and formats; each task's metrics and their directions come from the task itself
(recorded in every result), so a new task needs one line here and no code.
"""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.yamlfile import load_yaml

BOARD_FORMAT = 1
DEFAULT_SCHEMA = Path(__file__).with_name("board.yaml")
TOP_KEYS = {"board", "name", "version", "groups", "formats", "incomplete"}
GROUP_KEYS = {"family", "title", "tasks"}
TASK_KEYS = {"task", "version", "metrics", "title"}
TASK_RE = re.compile(r"^(?P<name>[^@\s]+)(?:@v(?P<version>\d+))?$")


@dataclass(frozen=True)
class BoardTask:
    name: str
    version: int | None = None  # pinned version; None: the registered task's current version
    metrics: tuple[str, ...] | None = None  # None: the task's own headline
    title: str | None = None


@dataclass(frozen=True)
class BoardGroup:
    family: str
    title: str
    tasks: tuple[BoardTask, ...]


NULL = "null"  # a metric the result records without a value (its `reason` says why)


@dataclass
class BoardSchema:
    path: Path
    name: str
    version: int
    groups: list[BoardGroup]
    formats: list[tuple[str, str]] = field(default_factory=list)
    show_incomplete: bool = True

    @property
    def tasks(self) -> list[BoardTask]:
        return [t for g in self.groups for t in g.tasks]

    def format_spec(self, metric: str) -> str:
        for pattern, spec in self.formats:
            if fnmatch.fnmatchcase(metric, pattern):
                return spec
        return ".4g"

    def fmt(self, metric: str, value: float | None) -> str:
        """A value in the schema's display format ("null" for a metric recorded without a value, "inf"/"nan" spelled
        out). "n/a" is kept for a model that cannot do the task at all."""
        if value is None:
            return NULL
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return format(value, self.format_spec(metric))

    def fmt_uncertainty(self, metric: str, m: dict[str, Any]) -> str:
        """"± se" or "[lo, hi]" in the metric's format, or "" when the metric carries none."""
        spec = self.format_spec(metric)
        if m.get("stderr") is not None:
            return f"± {format(m['stderr'], _stderr_spec(spec))}"
        if m.get("ci_low") is not None and m.get("ci_high") is not None:
            return f"[{format(m['ci_low'], spec)}, {format(m['ci_high'], spec)}]"
        return ""


def _stderr_spec(spec: str) -> str:
    """Standard errors shown with two significant digits, or as a percentage when the value is one."""
    return ".2%" if spec.endswith("%") else ".2g"


def load_schema(path: str | Path | None = None) -> BoardSchema:
    doc = load_yaml(path or DEFAULT_SCHEMA)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error("must be a mapping with board, name, version, groups")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise doc.error(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(TOP_KEYS))})", unknown[0])
    if data.get("board") != BOARD_FORMAT:
        raise doc.error(f"'board: {BOARD_FORMAT}' (the schema format version) is required", "board")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise doc.error("version must be a positive integer (the board's version)", "version")
    name = data.get("name", "leaderboard")
    if not isinstance(name, str):
        raise doc.error("name must be text", "name")
    groups_raw = data.get("groups")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise doc.error("groups must be a non-empty list", "groups")
    groups, seen = [], set()
    for i, g in enumerate(groups_raw):
        if not isinstance(g, dict):
            raise doc.error("each group must be a mapping with family, title, tasks", "groups", i)
        bad = sorted(set(g) - GROUP_KEYS)
        if bad:
            raise doc.error(f"unknown key {bad[0]!r} in a group (allowed: {', '.join(sorted(GROUP_KEYS))})",
                            "groups", i, bad[0])
        family = g.get("family")
        if not isinstance(family, str) or not family:
            raise doc.error("a group needs a family name", "groups", i)
        tasks_raw = g.get("tasks")
        if not isinstance(tasks_raw, list) or not tasks_raw:
            raise doc.error(f"group {family}: tasks must be a non-empty list", "groups", i, "tasks")
        tasks = []
        for j, t in enumerate(tasks_raw):
            task = _task(doc, t, ("groups", i, "tasks", j))
            if task.name in seen:
                raise doc.error(f"task {task.name} is listed twice", "groups", i, "tasks", j)
            seen.add(task.name)
            tasks.append(task)
        title = g.get("title", family.capitalize())
        if not isinstance(title, str):
            raise doc.error("title must be text", "groups", i, "title")
        groups.append(BoardGroup(family, title, tuple(tasks)))
    formats = []
    fm = data.get("formats") or {}
    if not isinstance(fm, dict):
        raise doc.error("formats must be a mapping of metric pattern -> format spec", "formats")
    for pattern, spec in fm.items():
        try:
            format(1.5, str(spec))
        except (ValueError, TypeError):
            raise doc.error(f"format {spec!r} for {pattern!r} is not a Python format spec (e.g. '.2f')",
                            "formats", pattern) from None
        formats.append((str(pattern), str(spec)))
    incomplete = data.get("incomplete", "show")
    if incomplete not in ("show", "hide"):
        raise doc.error("incomplete must be show or hide", "incomplete")
    return BoardSchema(doc.path, name, version, groups, formats, incomplete == "show")


def _task(doc, raw: Any, keys: tuple) -> BoardTask:
    if isinstance(raw, str):
        m = TASK_RE.match(raw.strip())
        if not m:
            raise doc.error(f"task {raw!r} must be a name or name@vN", *keys)
        return BoardTask(m["name"], int(m["version"]) if m["version"] else None)
    if not isinstance(raw, dict):
        raise doc.error("a task is a name, name@vN, or a mapping with task, version, metrics", *keys)
    bad = sorted(set(raw) - TASK_KEYS)
    if bad:
        raise doc.error(f"unknown key {bad[0]!r} in a task (allowed: {', '.join(sorted(TASK_KEYS))})", *keys, bad[0])
    name = raw.get("task")
    if not isinstance(name, str) or not TASK_RE.match(name):
        raise doc.error("a task mapping needs task: <name>", *keys)
    version = raw.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise doc.error("version must be an integer", *keys, "version")
    metrics = raw.get("metrics")
    if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(x, str) for x in metrics)):
        raise doc.error("metrics must be a list of metric names", *keys, "metrics")
    title = raw.get("title")
    return BoardTask(name, version, tuple(metrics) if metrics else None, title if isinstance(title, str) else None)
