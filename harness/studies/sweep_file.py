"""Declarative sweeps: a YAML file with a `base` run and a `grid` of overrides, expanded into run specs.

    sweep: 1                                   # format version of this file
    name: ablation-levels                      # default: the file's stem
    base:  {model: pyratok, model_args: {...}, task_args: {...}, tasks: [ucf101-recon, davis], seed: 0, limit: null,
            data_root: null, batch_size: null, workers: 0}
    grid:  {model_args.levels: [1, 2, 3, 4], task_args.num_frames: [9, 17], model: [...], seed: [...]}
    cells: [{model_args.levels: 6}, ...]       # explicit extra variants (each may carry its own `train`)
    default: {model_args.levels: 4}            # the reference variant of the ablation tables
    train: {checkpoint: ..., command: [...], model_arg: checkpoint}    # trains a variant's missing checkpoint
    metrics: {ucf101-recon: [psnr_frame, ssim, bpp, "codebook/*/used_fraction"]}

A variant is one set of overrides (a grid point or an explicit cell); every variant is evaluated on every task. Its
name comes from its sorted overrides ("align_levels=last+levels=4"), so result paths and tables are deterministic.
Everything is validated before anything runs; errors name the file and the line.
"""
from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.yamlfile import YamlDoc, load_yaml

SWEEP_FORMAT = 1
TOP_KEYS = {"sweep", "name", "description", "base", "grid", "cells", "default", "train", "metrics"}
BASE_KEYS = {"model", "model_args", "task_args", "tasks", "seed", "limit", "data_root", "batch_size", "workers"}
TASK_KEYS = {"name", "task_args", "data_root"}
TRAIN_KEYS = {"checkpoint", "command", "model_arg", "timeout_s"}
PLAIN_OVERRIDES = {"model", "seed"}
PREFIXES = ("model_args.", "task_args.")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class TrainSpec:
    """How to make a variant's checkpoint when it is missing: a command (templated), run before its cells."""

    checkpoint: str
    command: tuple[str, ...]
    model_arg: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class TaskEntry:
    name: str
    task_args: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None


@dataclass
class Variant:
    """One set of overrides of the base run; `train` is its resolved (placeholder-free) training step.

    Task args are layered: `base_task_args` (every task) < a task entry's own task_args < the variant's overrides."""

    name: str
    overrides: dict[str, Any]
    model: str
    model_args: dict[str, Any]
    base_task_args: dict[str, Any]
    task_overrides: dict[str, Any]
    seed: int
    train: TrainSpec | None = None

    @property
    def task_args(self) -> dict[str, Any]:
        return {**self.base_task_args, **self.task_overrides}


@dataclass
class Cell:
    """One run of the sweep: a variant on a task."""

    variant: Variant
    task: TaskEntry
    limit: int | None
    batch_size: int | None
    workers: int

    @property
    def name(self) -> str:
        return f"{self.variant.name}/{self.task.name}"

    @property
    def model(self) -> str:
        return self.variant.model

    @property
    def model_args(self) -> dict[str, Any]:
        return self.variant.model_args

    @property
    def task_args(self) -> dict[str, Any]:
        return {**self.variant.base_task_args, **self.task.task_args, **self.variant.task_overrides}

    @property
    def seed(self) -> int:
        return self.variant.seed


@dataclass
class Sweep:
    path: Path
    name: str
    description: str
    variants: list[Variant]
    tasks: list[TaskEntry]
    cells: list[Cell]
    default: Variant | None
    metrics: dict[str, list[str]]
    grid_keys: list[str]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


# ---------------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------------
def value_text(value: Any) -> str:
    """A value as it appears in a cell name: scalars plainly, lists and mappings as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def short_key(key: str) -> str:
    """model_args.levels -> levels; task_args.num_frames -> task.num_frames; model, seed unchanged."""
    if key.startswith("model_args."):
        return key[len("model_args."):]
    if key.startswith("task_args."):
        return "task." + key[len("task_args."):]
    return key


def variant_name(overrides: dict[str, Any]) -> str:
    """Deterministic name from the overrides sorted by key; "base" when there are none."""
    if not overrides:
        return "base"
    return "+".join(f"{short_key(k)}={value_text(overrides[k])}" for k in sorted(overrides))


# ---------------------------------------------------------------------------------------------------------------
# Templates (train section)
# ---------------------------------------------------------------------------------------------------------------
def fill(template: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders; {{ and }} are literal braces. Unknown names raise KeyError(name)."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        key = m.group(1).strip()
        if key not in values:
            raise KeyError(key)
        return values[key]

    return PLACEHOLDER_RE.sub(sub, template)


def template_values(sweep_name: str, v: Variant) -> dict[str, str]:
    """What a train template may name: {sweep} {cell} {model} {seed} {python} {model_args.K} {task_args.K}."""
    out = {"sweep": sweep_name, "cell": v.name, "model": v.model, "seed": str(v.seed), "python": sys.executable}
    out.update({f"model_args.{k}": value_text(x) for k, x in v.model_args.items()})
    out.update({f"task_args.{k}": value_text(x) for k, x in v.task_args.items()})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------------------------
def load_sweep(path: str | Path) -> Sweep:
    doc = load_yaml(path)
    return _Parser(doc).parse()


class _Parser:
    def __init__(self, doc: YamlDoc):
        self.doc = doc

    def fail(self, problem: str, *keys: Any) -> DataError:
        return self.doc.error(problem, *keys)

    # -- small checks ------------------------------------------------------------------------------------------
    def mapping(self, value: Any, *keys: Any, allowed: set[str] | None = None) -> dict[str, Any]:
        where = ".".join(map(str, keys)) or "the file"
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a mapping, got {type(value).__name__}", *keys)
        for k in value:
            if not isinstance(k, str):
                raise self.fail(f"{where}: key {k!r} must be text", *keys)
            if allowed is not None and k not in allowed:
                raise self.fail(f"unknown key {k!r} in {where} (allowed: {', '.join(sorted(allowed))})", *keys, k)
        return value

    def typed(self, value: Any, types: tuple[type, ...], what: str, *keys: Any, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types) + (" or null" if optional else "")
            raise self.fail(f"{what} must be {names}, got {type(value).__name__} {value!r}", *keys)
        return value

    def args(self, value: Any, *keys: Any) -> dict[str, Any]:
        if value is None:
            return {}
        return dict(self.mapping(value, *keys))

    def override_key(self, key: str, *keys: Any) -> None:
        if key in PLAIN_OVERRIDES:
            return
        if key.startswith(PREFIXES) and key.split(".", 1)[1]:
            return
        raise self.fail(f"cannot vary {key!r}: an override is model_args.<name>, task_args.<name>, model or seed",
                        *keys)

    def override_value(self, key: str, value: Any, *keys: Any) -> None:
        if key == "model":
            self.typed(value, (str,), "model", *keys)
        elif key == "seed":
            self.typed(value, (int,), "seed", *keys)

    # -- sections ----------------------------------------------------------------------------------------------
    def parse(self) -> Sweep:
        doc = self.mapping(self.doc.data if self.doc.data is not None else {}, allowed=TOP_KEYS)
        if "sweep" not in doc:
            raise self.fail(f"missing 'sweep: {SWEEP_FORMAT}' (the version of the sweep file format)")
        if doc["sweep"] != SWEEP_FORMAT or isinstance(doc["sweep"], bool):
            raise self.fail(f"sweep format {doc['sweep']!r} is not supported (this harness reads {SWEEP_FORMAT})",
                            "sweep")
        name = doc.get("name", self.doc.path.stem)
        self.typed(name, (str,), "name", "name")
        if not NAME_RE.match(name):
            raise self.fail(f"name {name!r} must be letters, digits and ._+=- (it names result files)", "name")
        description = self.typed(doc.get("description", ""), (str,), "description", "description")
        if "base" not in doc:
            raise self.fail("missing the 'base' section (model, tasks, ...)")
        base = self.mapping(doc["base"], "base", allowed=BASE_KEYS)
        tasks = self.tasks(base)
        grid = self.grid(doc.get("grid"))
        if "model" in base:
            self.typed(base["model"], (str,), "base.model", "base", "model")
        seed = self.typed(base.get("seed", 0), (int,), "base.seed", "base", "seed")
        limit = self.typed(base.get("limit"), (int,), "base.limit", "base", "limit", optional=True)
        if limit is not None and limit < 1:
            raise self.fail("base.limit must be at least 1", "base", "limit")
        batch_size = self.typed(base.get("batch_size"), (int,), "base.batch_size", "base", "batch_size",
                                optional=True)
        workers = self.typed(base.get("workers", 0), (int,), "base.workers", "base", "workers")
        base_model_args = self.args(base.get("model_args"), "base", "model_args")
        base_task_args = self.args(base.get("task_args"), "base", "task_args")
        train = self.train(doc.get("train"), "train") if doc.get("train") is not None else None

        override_sets = self.expand(grid, doc.get("cells"))
        variants = []
        for overrides, cell_train, keys in override_sets:
            v = self.variant(name, overrides, base, base_model_args, base_task_args, seed)
            if v.model is None:
                raise self.fail("base.model is missing (or vary it with grid.model)", "base")
            spec = train if cell_train is _INHERIT else cell_train
            if spec is not None:
                v.train = self.resolve_train(name, v, spec, keys)
            variants.append(v)
        seen: dict[str, int] = {}
        for i, v in enumerate(variants):
            if v.name in seen:
                raise self.fail(f"variant {v.name!r} is listed twice", *override_sets[i][2])
            seen[v.name] = i
        default = self.default(doc.get("default"), variants)
        cells = [Cell(v, t, limit, batch_size, workers) for v in variants for t in tasks]
        metrics = self.metrics(doc.get("metrics"))
        return Sweep(self.doc.path, name, description, variants, tasks, cells, default, metrics, sorted(grid))

    def tasks(self, base: dict[str, Any]) -> list[TaskEntry]:
        if "tasks" not in base:
            raise self.fail("base.tasks is missing (a list of task names)", "base")
        raw = base["tasks"]
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise self.fail("base.tasks must be a non-empty list of task names", "base", "tasks")
        common_root = self.typed(base.get("data_root"), (str,), "base.data_root", "base", "data_root",
                                 optional=True)
        out: list[TaskEntry] = []
        for i, item in enumerate(raw):
            keys = ("base", "tasks", i)
            if isinstance(item, str):
                out.append(TaskEntry(item, {}, common_root))
                continue
            entry = self.mapping(item, *keys, allowed=TASK_KEYS)
            if "name" not in entry:
                raise self.fail("a task entry needs a name", *keys)
            self.typed(entry["name"], (str,), "task name", *keys, "name")
            root = self.typed(entry.get("data_root", common_root), (str,), "data_root", *keys, "data_root",
                              optional=True)
            out.append(TaskEntry(entry["name"], self.args(entry.get("task_args"), *keys, "task_args"), root))
        names = [t.name for t in out]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise self.fail(f"task {dup[0]!r} is listed twice in base.tasks", "base", "tasks")
        return out

    def grid(self, raw: Any) -> dict[str, list[Any]]:
        if raw is None:
            return {}
        grid = self.mapping(raw, "grid")
        for key, values in grid.items():
            self.override_key(key, "grid", key)
            if not isinstance(values, list) or not values:
                raise self.fail(f"grid.{key} must be a non-empty list of values", "grid", key)
            texts = [value_text(v) for v in values]
            if len(set(texts)) != len(texts):
                raise self.fail(f"grid.{key} repeats a value", "grid", key)
            for i, v in enumerate(values):
                self.override_value(key, v, "grid", key, i)
        return grid

    def expand(self, grid: dict[str, list[Any]], cells: Any):
        """[(overrides, train or _INHERIT, key path for errors)]: the grid's product, then the explicit cells."""
        out = []
        keys = sorted(grid)
        if keys:  # (the product of no lists would be one empty combination)
            for combo in itertools.product(*(grid[k] for k in keys)):
                out.append((dict(zip(keys, combo)), _INHERIT, ("grid",)))
        if not grid and not cells:
            out.append(({}, _INHERIT, ()))
        if cells is not None:
            if not isinstance(cells, list):
                raise self.fail("cells must be a list of override mappings", "cells")
            for i, cell in enumerate(cells):
                cell = dict(self.mapping(cell, "cells", i))
                train: Any = _INHERIT
                if "train" in cell:
                    t = cell.pop("train")
                    train = None if t is None else self.train(t, "cells", i, "train")
                for key, value in cell.items():
                    self.override_key(key, "cells", i, key)
                    self.override_value(key, value, "cells", i, key)
                out.append((cell, train, ("cells", i)))
        return out

    def variant(self, sweep_name: str, overrides: dict[str, Any], base: dict[str, Any], model_args: dict[str, Any],
                task_args: dict[str, Any], seed: int) -> Variant:
        m_args, t_over = dict(model_args), {}
        model, v_seed = base.get("model"), seed
        for key, value in overrides.items():
            if key == "model":
                model = value
            elif key == "seed":
                v_seed = value
            elif key.startswith("model_args."):
                m_args[key.split(".", 1)[1]] = value
            else:
                t_over[key.split(".", 1)[1]] = value
        return Variant(variant_name(overrides), dict(overrides), model, m_args, dict(task_args), t_over, v_seed)

    def train(self, raw: Any, *keys: Any) -> TrainSpec:
        t = self.mapping(raw, *keys, allowed=TRAIN_KEYS)
        for required in ("checkpoint", "command"):
            if required not in t:
                raise self.fail(f"{'.'.join(map(str, keys))}.{required} is missing", *keys)
        checkpoint = self.typed(t["checkpoint"], (str,), "train.checkpoint", *keys, "checkpoint")
        command = t["command"]
        if isinstance(command, str) or not isinstance(command, list) or not command:
            raise self.fail("train.command must be a non-empty list of arguments (no shell string)", *keys, "command")
        for i, part in enumerate(command):
            self.typed(part, (str, int, float), "each train.command argument", *keys, "command", i)
        model_arg = self.typed(t.get("model_arg"), (str,), "train.model_arg", *keys, "model_arg", optional=True)
        timeout = self.typed(t.get("timeout_s"), (int, float), "train.timeout_s", *keys, "timeout_s", optional=True)
        return TrainSpec(checkpoint, tuple(str(p) for p in command), model_arg, timeout)

    def resolve_train(self, sweep_name: str, v: Variant, spec: TrainSpec, keys: tuple) -> TrainSpec:
        values = template_values(sweep_name, v)
        try:
            checkpoint = fill(spec.checkpoint, values)
            command = tuple(fill(p, {**values, "checkpoint": checkpoint}) for p in spec.command)
        except KeyError as exc:
            known = ", ".join("{" + k + "}" for k in sorted({**values, "checkpoint": ""}) if k != "python")
            raise self.fail(f"train template names {{{exc.args[0]}}}, which variant {v.name!r} does not define "
                            f"(known: {known}, {{python}})", *(keys or ("train",))) from None
        if spec.model_arg:
            v.model_args[spec.model_arg] = checkpoint
        return TrainSpec(checkpoint, command, spec.model_arg, spec.timeout_s)

    def default(self, raw: Any, variants: list[Variant]) -> Variant | None:
        if raw is None:
            return None
        d = self.mapping(raw, "default")
        for key in d:
            self.override_key(key, "default", key)
        matches = [v for v in variants if all(k in v.overrides and value_text(v.overrides[k]) == value_text(x)
                                             for k, x in d.items())]
        if len(matches) != 1:
            found = ", ".join(v.name for v in matches) or "none"
            raise self.fail(f"default must name exactly one variant; {variant_name(d)!r} matches {found}", "default")
        return matches[0]

    def metrics(self, raw: Any) -> dict[str, list[str]]:
        if raw is None:
            return {}
        m = self.mapping(raw, "metrics")
        out = {}
        for task, names in m.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
                raise self.fail(f"metrics.{task} must be a non-empty list of metric names (patterns allowed)",
                                "metrics", task)
            out[task] = list(names)
        return out


class _Inherit:
    def __repr__(self) -> str:
        return "<inherit>"


_INHERIT = _Inherit()
