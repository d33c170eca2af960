"""A content-addressed per-sample cache: an interrupted run resumes where it stopped, on any number of processes.

The key of a run folds in everything that determines a model's answer to a task's request: the adapter, its canonical
args and the sha256 of every weight file (not the model *name*, which would serve stale answers after the weights
change), the task's name, version and protocol, and the seed. A sample's file name adds the sample's id and input
fingerprint. Nothing depends on the rank or the batch, so any sharding can resume any other.

Each record is two files: `<key>.npz` (arrays, written first, loaded without pickle) and `<key>.json` (values; written
last, so its presence marks a complete record). Both writes are atomic.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.hashing import canonical_json, sha256_obj, sha256_text
from harness.io import dumps_json, write_bytes, write_text
from harness.task import Record, Sample

CACHE_SCHEMA = 1


def default_cache_root() -> Path:
    return Path(os.environ.get("PYRATOK_BENCH_CACHE") or Path.home() / ".cache" / "pyratok-bench")


def run_key(model_identity: dict[str, Any], task_identity: dict[str, Any]) -> str:
    return sha256_obj({"schema": CACHE_SCHEMA, "model": model_identity, "task": task_identity})


class SampleCache:
    def __init__(self, root: str | Path, key: str):
        self.key = key
        self.dir = Path(root) / "samples" / key[:2] / key

    def _stem(self, sample: Sample) -> Path:
        return self.dir / sha256_text(canonical_json(sample.fingerprint()))[:40]

    def get(self, sample: Sample) -> Record | None:
        stem = self._stem(sample)
        meta_path = stem.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if meta.get("sample_id") != sample.id:
            return None
        arrays: dict[str, np.ndarray] = {}
        if meta.get("arrays"):
            try:
                with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (FileNotFoundError, ValueError, OSError):
                return None
            if set(arrays) != set(meta["arrays"]):
                return None
        return Record(sample.id, meta.get("values", {}), arrays)

    def put(self, sample: Sample, record: Record) -> None:
        stem = self._stem(sample)
        if record.arrays:
            buf = io.BytesIO()
            np.savez(buf, **{k: np.asarray(v) for k, v in record.arrays.items()})
            write_bytes(stem.with_suffix(".npz"), buf.getvalue())
        meta = {"sample_id": record.sample_id, "values": record.values, "arrays": sorted(record.arrays)}
        write_text(stem.with_suffix(".json"), dumps_json(meta, indent=None))

    def count(self) -> int:
        return len(list(self.dir.glob("*.json"))) if self.dir.exists() else 0
