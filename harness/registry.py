"""Name -> object registries with lazy "module:Object" entries and entry-point plugins.

Built-in entries are strings, so `--task davis` never imports the FVD code of another task. Third-party packages add
their own through the entry-point groups `pyratok_bench.tasks`, `pyratok_bench.models` and `pyratok_bench.metrics`;
built-in names win a collision (with a warning), so a plugin can never silently change what a built-in name means.
"""
from __future__ import annotations

import difflib
import importlib
import threading
import warnings
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable


class UnknownNameError(KeyError):
    """A name that is not registered; the message carries the close matches."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def load_object(path: str) -> Any:
    """Import "package.module:Attr.sub" and return the attribute."""
    if ":" not in path:
        raise ValueError(f"expected 'module:Object', got {path!r}")
    module_name, attr = path.split(":", 1)
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry:
    """A thread-safe map from names to lazily imported objects."""

    def __init__(self, kind: str, group: str | None = None, builtins: Callable[[], dict[str, Any]] | None = None):
        self.kind = kind
        self.group = group
        self._builtins = builtins
        self._entries: dict[str, Any] = {}
        self._resolved: dict[str, Any] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # -- filling ---------------------------------------------------------------------------------------------
    def register(self, name: str, obj: Any = None, *, overwrite: bool = False):
        """Register `obj` (an object or a "module:Object" string) under `name`; usable as a decorator."""
        if obj is None:
            def decorator(target):
                self.register(name, target, overwrite=overwrite)
                return target
            return decorator
        with self._lock:
            self._ensure_loaded()
            if name in self._entries and not overwrite and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
            self._entries[name] = obj
            self._resolved.pop(name, None)
        return obj

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
            self._resolved.pop(name, None)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins is not None:
            self._entries.update(self._builtins())
        if self.group:
            for ep in _entry_points(self.group):
                if ep.name in self._entries:
                    warnings.warn(f"plugin {self.kind} {ep.name!r} from {ep.value} is shadowed by the built-in one")
                    continue
                self._entries[ep.name] = ep

    # -- reading ---------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            self._ensure_loaded()
            return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            self._ensure_loaded()
            return name in self._entries

    def get(self, name: str) -> Any:
        with self._lock:
            self._ensure_loaded()
            if name in self._resolved:
                return self._resolved[name]
            if name not in self._entries:
                close = difflib.get_close_matches(name, self._entries, n=5, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._entries))})")
            entry = self._entries[name]
            if isinstance(entry, str):
                obj = load_object(entry)
            elif hasattr(entry, "load") and hasattr(entry, "group"):  # an importlib EntryPoint
                obj = entry.load()
            else:
                obj = entry
            self._resolved[name] = obj
            return obj

    def entry(self, name: str) -> str:
        """Where a name points, as text, without importing it."""
        with self._lock:
            self._ensure_loaded()
            e = self._entries[name]
            if isinstance(e, str):
                return e
            if hasattr(e, "value"):
                return e.value
            return f"{getattr(e, '__module__', '?')}:{getattr(e, '__qualname__', repr(e))}"


def _entry_points(group: str) -> Iterable:
    try:
        return entry_points(group=group)
    except TypeError:  # Python < 3.10 API
        return entry_points().get(group, [])


def _builtin_tasks() -> dict[str, Any]:
    from tasks import TASKS
    return dict(TASKS)


def _builtin_models() -> dict[str, Any]:
    from models import MODELS
    return dict(MODELS)


TASKS = Registry("task", "pyratok_bench.tasks", _builtin_tasks)
MODELS = Registry("model", "pyratok_bench.models", _builtin_models)
METRICS = Registry("metric", "pyratok_bench.metrics", lambda: {})


def _builtin_datasets() -> dict[str, Any]:
    from tasks import DATASETS as builtin
    return dict(builtin)


DATASETS = Registry("data set", "pyratok_bench.datasets", _builtin_datasets)
