"""What the result files say, and how each one stands against the current tasks: the one view every report uses.

A result is *usable for the board* when it is complete, was not limited (--limit), is at the task's current version
(the version the registered task would produce now) and used the task's standard protocol. Everything else is
classified, never silently dropped: `limited`, `partial`, `failed`, `outdated` (older task version), `non-standard`
(protocol overrides, e.g. an ablation's num_frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.hashing import to_jsonable
from harness.results import iter_results


@dataclass
class ResultRef:
    path: Path
    data: dict[str, Any]

    @property
    def model_id(self) -> str:
        return str(self.data["model"]["id"])

    @property
    def model_args(self) -> dict[str, Any]:
        return dict(self.data["model"].get("args") or {})

    @property
    def model_label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.model_args.items()) if v is not None)
        return f"{self.model_id} ({args})" if args else self.model_id

    @property
    def task(self) -> dict[str, Any]:
        return self.data["task"]

    @property
    def task_name(self) -> str:
        return str(self.task["name"])

    @property
    def task_version(self) -> int:
        return int(self.task["version"])

    @property
    def status(self) -> str:
        return str(self.data.get("status"))

    @property
    def limited(self) -> bool:
        return bool(self.task.get("data", {}).get("limited"))

    @property
    def mini(self) -> bool:
        return bool(self.task.get("data", {}).get("mini"))

    @property
    def data_kind(self) -> str:
        return "mini" if self.mini else "full"

    @property
    def created_at(self) -> str:
        return str(self.data.get("created_at", ""))

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data.get("metrics") or {}

    @property
    def headline(self) -> list[str]:
        return list(self.task.get("headline") or [k for k in self.metrics if "/" not in k][:6])


def load_results(root: str | Path) -> list[ResultRef]:
    return [ResultRef(p, d) for p, d in iter_results(root)]


# ---------------------------------------------------------------------------------------------------------------
# The registered tasks (None when a task is not installed here: the report then falls back on the result files)
# ---------------------------------------------------------------------------------------------------------------
def registered_task(name: str):
    from harness.registry import TASKS

    if name not in TASKS:
        return None
    try:
        return TASKS.get(name)
    except Exception:  # noqa: BLE001 - a broken plugin is reported as "not registered", not a crash
        return None


def current_version(name: str) -> int | None:
    cls = registered_task(name)
    return int(cls.version) if cls is not None else None


def standard_protocol(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The protocol the registered task uses with these overrides (None when the task is not registered)."""
    cls = registered_task(name)
    if cls is None:
        return None
    return to_jsonable(cls(**(overrides or {})).protocol_dict())


def same(a: Any, b: Any) -> bool:
    """Equality of JSON values as recorded (4 == 4.0, but True is not 1)."""
    a, b = to_jsonable(a), to_jsonable(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def board_state(ref: ResultRef, required_version: int | None, protocol: dict[str, Any] | None) -> str:
    """"ok" or why this result cannot stand on the main board ("n/a": the runner found the model cannot be evaluated
    under the protocol, e.g. a text-only protocol and a model without language)."""
    if ref.status == "not_applicable":
        return "n/a"
    if ref.status != "complete":
        return ref.status if ref.status in ("partial", "failed") else "partial"
    if ref.limited:
        return "limited"
    if required_version is not None and ref.task_version != required_version:
        return "outdated" if ref.task_version < required_version else "newer"
    if protocol is not None and not same(ref.task.get("protocol"), protocol):
        return "non-standard"
    return "ok"


STATE_RANK = {"ok": 0, "n/a": 1, "limited": 2, "partial": 3, "failed": 4, "non-standard": 5, "outdated": 6, "newer": 7}
