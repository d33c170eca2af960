"""Shared fixtures. Tests run offline and never touch the user's cache: mini splits are generated once per session
into PYRATOK_BENCH_CACHE (CI points it into the checkout; otherwise a session temporary folder)."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Metric weights: tests make their own; an empty folder keeps a developer's real weights out of the suite.
if not os.environ.get("PYRATOK_BENCH_WEIGHTS"):
    os.environ["PYRATOK_BENCH_WEIGHTS"] = tempfile.mkdtemp(prefix="pyratok-bench-test-weights-")
if not os.environ.get("PYRATOK_BENCH_CACHE"):
    os.environ["PYRATOK_BENCH_CACHE"] = tempfile.mkdtemp(prefix="pyratok-bench-test-cache-")


@pytest.fixture(scope="session")
def cache_root() -> Path:
    return Path(os.environ["PYRATOK_BENCH_CACHE"])


@pytest.fixture(scope="session")
def ucf_mini(cache_root) -> Path:
    from harness.dataset import ensure_mini

    return ensure_mini("ucf101", cache_root=cache_root)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def moving_frames(t=12, h=48, w=64, seed=0) -> np.ndarray:
    """A textured square moving over a gradient: deterministic uint8 (T, H, W, 3) frames with motion and detail."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
    frames = []
    s = max(2, min(16, h // 3, w // 3))
    for i in range(t):
        f = base.copy()
        y0, x0 = i % (h - s), 2 * i % (w - s)
        f[y0:y0 + s, x0:x0 + s] = r.integers(0, 256, (s, s, 3))
        frames.append(f)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)
