"""FVD of generated videos against real clips whose feature statistics are computed once, cached and reused.

Generation tasks compare every model with the same real clips. Their I3D features are streamed into running float64
sums (`FeatureStats`: memory O(d²) whatever the number of clips) and stored in the harness cache under a key made of
the task, the protocol of the real clips, the manifest of the real set (ids, file sizes, clip positions) and the
sha256 of the detector's weights; any change to one of these computes them again, nothing else does.

Generated features are kept per video in the task's records, so the distance is computed at aggregate time and gets
a percentile bootstrap interval over prompts (all videos of a drawn prompt together) with the real statistics held
fixed: the interval says how much the number depends on which prompts were generated, for this real set.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from harness.errors import DataError
from harness.hashing import sha256_obj
from harness.io import dumps_json, read_json, write_bytes, write_text
from harness.metrics.frechet import FeatureStats, FrechetResult, frechet_distance_eig, frechet_from_stats
from harness.stats import bootstrap_ci
from harness.task import Sample

STATS_SCHEMA = 1


@contextlib.contextmanager
def deterministic_kernels() -> Iterator[None]:
    """cuDNN's deterministic convolutions while features are extracted, so the same frames always give the same
    features (the in-process run and `score t2v` must agree exactly); restored afterwards."""
    prev = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev


@dataclass
class ReferenceSet:
    """The real clips of a generation task: what identifies them, and how to decode one."""

    name: str  # the task
    identity: dict[str, Any]  # task version and the protocol of the real clips
    samples: list[Sample]
    load: Callable[[Sample], np.ndarray]  # uint8 (T, H, W, 3)
    fingerprint: Callable[[Sample], dict[str, Any]] = lambda s: s.fingerprint()
    description: str = ""

    def key(self, detector: str, weights_sha256: str) -> str:
        manifest = sha256_obj([self.fingerprint(s) for s in self.samples])
        return sha256_obj({"schema": STATS_SCHEMA, "task": self.name, "identity": self.identity,
                           "manifest": manifest, "detector": detector, "weights_sha256": weights_sha256})


@dataclass
class ReferenceStats:
    detector: str
    stats: FeatureStats
    key: str
    weights_sha256: str
    failed: list[dict[str, str]] = field(default_factory=list)
    reused: bool = False


class ReferenceStatsCache:
    """<cache>/reference-stats/<task>/<detector>-<key>.{npz,json}; the JSON is written last and marks completion."""

    def __init__(self, root: str | Path):
        self.dir = Path(root) / "reference-stats"

    def _stem(self, task: str, detector: str, key: str) -> Path:
        from harness.results import safe_name

        return self.dir / safe_name(task) / f"{safe_name(detector)}-{key[:32]}"

    def load(self, task: str, detector: str, key: str) -> ReferenceStats | None:
        stem = self._stem(task, detector, key)
        try:
            meta = read_json(stem.with_suffix(".json"))
            with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None
        if meta.get("key") != key:
            return None
        n = int(arrays["n"])
        stats = FeatureStats(dim=int(arrays["dim"]) if n else None, n=n,
                             shift=arrays["shift"] if n else None, sum=arrays["sum"] if n else None,
                             sum_outer=arrays["sum_outer"] if n else None)
        return ReferenceStats(detector, stats, key, meta["weights_sha256"], meta.get("failed", []), reused=True)

    def save(self, task: str, ref: ReferenceStats, info: dict[str, Any]) -> Path:
        import io

        stem = self._stem(task, ref.detector, ref.key)
        s = ref.stats
        empty = np.zeros(0)
        buf = io.BytesIO()
        np.savez(buf, n=np.array(s.n), dim=np.array(s.dim or 0), shift=s.shift if s.n else empty,
                 sum=s.sum if s.n else empty, sum_outer=s.sum_outer if s.n else empty)
        write_bytes(stem.with_suffix(".npz"), buf.getvalue())
        meta = {"key": ref.key, "task": task, "detector": ref.detector, "weights_sha256": ref.weights_sha256,
                "n": s.n, "failed": ref.failed, **info}
        write_text(stem.with_suffix(".json"), dumps_json(meta))
        return stem.with_suffix(".json")


def reference_stats(ref: ReferenceSet, extractors: dict[str, Any], cache: ReferenceStatsCache,
                    batch_size: int = 8, progress: bool = True,
                    log: Callable[[str], None] | None = None) -> dict[str, ReferenceStats]:
    """The statistics of the real clips for each detector in `extractors` (name -> loaded extractor with .sha256):
    from the cache, or computed in one pass over the real clips for every detector missing there, then cached.
    A real clip that cannot be decoded is left out and listed in `failed` (and in the cached JSON)."""
    from tqdm import tqdm

    log = log or (lambda msg: print(msg, file=sys.stderr))
    out: dict[str, ReferenceStats] = {}
    todo: dict[str, ReferenceStats] = {}
    for det, extractor in extractors.items():
        key = ref.key(det, extractor.sha256)
        hit = cache.load(ref.name, det, key)
        if hit is not None:
            out[det] = hit
        else:
            todo[det] = ReferenceStats(det, FeatureStats(), key, extractor.sha256)
    if not todo:
        return out
    log(f"[harness] computing the real-clip statistics of {ref.name} ({len(ref.samples)} clips; "
        f"{', '.join(todo)}); they are cached for every later run")
    failed: list[dict[str, str]] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if not batch:
            return
        clips = np.stack(batch)
        with deterministic_kernels():
            for det, acc in todo.items():
                acc.stats.update(extractors[det](clips))
        batch.clear()

    for sample in tqdm(ref.samples, desc=f"{ref.name} real clips", unit="clip", file=sys.stderr,
                       disable=None if progress else True, dynamic_ncols=True):  # None: only on a terminal
        try:
            clip = ref.load(sample)
        except DataError as exc:
            failed.append({"sample_id": sample.id, "path": sample.path or "", "error": str(exc)})
            log(f"[harness] real clip left out of the statistics: {exc}")
            continue
        if batch and clip.shape != batch[0].shape:
            flush()
        batch.append(clip)
        if len(batch) == batch_size:
            flush()
    flush()
    for det, acc in todo.items():
        acc.failed = failed
        cache.save(ref.name, acc, {"identity": ref.identity, "description": ref.description,
                                   "n_listed": len(ref.samples)})
        out[det] = acc
    return out


# ---------------------------------------------------------------------------------------------------------------
def frechet_to_reference(generated: np.ndarray, reference: FeatureStats) -> FrechetResult:
    """Both routes of the Fréchet distance between generated features (n, d) and the real statistics (as StyleGAN-V
    orders them: generated first)."""
    return frechet_from_stats(FeatureStats().update(np.asarray(generated, np.float64)), reference)


def bootstrap_to_reference(generated: np.ndarray, clusters: Sequence[str], reference: FeatureStats, iters: int,
                           seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the robust-route distance, resampling prompts (`clusters`: one label per generated
    row) with the real statistics fixed. Each replicate weights rows by how often they were drawn (no copies)."""
    x = np.asarray(generated, np.float64)
    if iters <= 0 or len(x) < 2 or reference.n < 2:
        return None
    mu_r, s_r = reference.mean(), reference.cov()

    def statistic(idx: np.ndarray) -> float:
        counts = np.bincount(idx, minlength=len(x)).astype(np.float64)
        n, keep = counts.sum(), counts > 0
        if n < 2:
            return float("nan")
        mu = counts @ x / n
        r = (x[keep] - mu) * np.sqrt(counts[keep] / (n - 1))[:, None]
        return frechet_distance_eig(mu, r.T @ r, mu_r, s_r, factor1=r)

    return bootstrap_ci(statistic, len(x), iters, seed, clusters=list(clusters))
