"""The task protocol: a task owns its data reader, its protocol and its metrics; models only answer requests.

A task is evaluated in three steps, which is what lets the runner cache, shard and resume any task the same way:
  samples(root)        list the evaluation items (cheap; no decoding) with stable ids;
  load(sample)         decode one item's inputs (runs in DataLoader workers; raises DataError for a bad item);
  evaluate(model, batch, seeds) -> one Record per item: per-sample values plus arrays kept for set-level metrics;
  aggregate(records)   the task's metrics over all records (set-level metrics such as FVD, mAP or J&F live here).
Records are cached per sample, so `aggregate` can always be re-run from the cache without running the model again.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from models.base import ModelAdapter


@dataclass(frozen=True)
class Sample:
    """One evaluation item. `id` is stable across machines and data-root locations (never a row number)."""

    id: str
    path: str | None = None  # main input file, for error messages and fingerprints
    stratum: str | None = None  # class label, for stratified --limit subsets
    cluster: str | None = None  # source video, for clustered uncertainty
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this item's input on disk (used in the cache key): its id and its file's size."""
        size = None
        if self.path:
            try:
                size = Path(self.path).stat().st_size
            except OSError:
                size = None
        return {"id": self.id, "size": size}


@dataclass
class Record:
    """A task's answer for one sample: JSON values (per-sample metrics, frame indices) and arrays for set-level state."""

    sample_id: str
    values: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SampleList:
    """The items of a split, plus the items the reader had to reject (missing files, malformed lines)."""

    samples: list[Sample]
    rejected: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Metric:
    """One reported number with its uncertainty and the exact variant that produced it."""

    value: float | None
    n: int
    higher_is_better: bool | None = True
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    variant: str | None = None
    unit: str | None = None
    reason: str | None = None  # why the value is null
    warning: str | None = None  # why a reported value deserves caution (e.g. too few samples for FVD)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k == "value"}


def optional_field(default: Any = None) -> Any:
    """A protocol field that is off by default (a control, or a parameter added after results exist): it enters the
    protocol record, and with it the result's identity, only when set, so results made without it stay standard."""
    return field(default=default, metadata={"omit_if_default": True})


class Task(ABC):
    """Base of every task. Subclasses set the class attributes and a `Protocol` dataclass of their parameters."""

    name: ClassVar[str]
    version: ClassVar[int]
    family: ClassVar[str]  # "reconstruction", "generation", "segmentation", "localization", "classification", ...
    dataset: ClassVar[str]  # the data set it reads; names its mini split writer
    requires: ClassVar[frozenset[str]] = frozenset()
    default_batch_size: ClassVar[int] = 1
    headline: ClassVar[tuple[str, ...]] = ()  # the metrics a leaderboard shows, in order
    Protocol: ClassVar[type]  # a dataclass type

    def __init__(self, **overrides: Any):
        fields = {f.name for f in dataclasses.fields(self.Protocol)}
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(f"task {self.name} has no protocol parameter {sorted(unknown)} (known: {sorted(fields)})")
        self.protocol = self.Protocol(**overrides)

    def protocol_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.protocol)
        for f in dataclasses.fields(self.protocol):
            if f.metadata.get("omit_if_default") and d[f.name] == f.default:
                del d[f.name]
        return d

    def describe(self) -> str:
        return (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else self.name

    def check_model(self, model: ModelAdapter) -> str | None:
        """Why `model` cannot be evaluated here (None when it can). Default: every required capability."""
        missing = self.requires - model.capabilities
        if missing:
            return f"task {self.name} needs {', '.join(sorted(missing))}, which {type(model).__name__} does not offer"
        return None

    @abstractmethod
    def samples(self, root: Path) -> SampleList:
        """List the items of the evaluated split under `root` (the data set's real layout)."""

    @abstractmethod
    def load(self, sample: Sample) -> Any:
        """Decode one item's inputs; raise harness.errors.DataError for an item that cannot be used."""

    # A task whose evaluate() is score(batch, predict(...)) sets `pipelined` and implements both halves: the runner
    # then scores batches on helper threads (runner.SCORE_THREADS at once) while the model answers the next ones
    # (metrics that release the GIL, such as scipy's filters and torch, overlap the model instead of adding to it);
    # `score` must be thread-safe: each batch's records from that batch alone.
    pipelined: ClassVar[bool] = False

    @abstractmethod
    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        """Ask the model, score each item; one Record per item, in order."""

    def predict(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> Any:
        """The model's part of `evaluate` (pipelined tasks only)."""
        raise NotImplementedError

    def score(self, batch: list[tuple[Sample, Any]], prediction: Any) -> list[Record]:
        """The metrics' part of `evaluate` (pipelined tasks only); must not touch the model."""
        raise NotImplementedError

    @abstractmethod
    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        """The task's metrics over all successful records."""
