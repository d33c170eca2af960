"""Speed of the feature-based metrics on this machine: prints figures, asserts nothing.

    python benchmarks/metrics_features.py [--device cpu] [--quick]

Random weights stand in for the real ones (the cost does not depend on their values).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness, not an installed one


def timed(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    from harness.metrics.frechet import bootstrap_frechet, frechet_distance_eig, frechet_distance_scipy, gaussian_stats
    from harness.metrics.i3d import InceptionI3d
    from harness.metrics.lpips import LPIPS

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 512 if a.quick else 2048
    x, y = rng.normal(size=(n, 400)), rng.normal(size=(n, 400)) * 1.1
    (m1, s1), (m2, s2) = gaussian_stats(x), gaussian_stats(y)
    print(f"Fréchet d=400 n={n}: scipy sqrtm {timed(lambda: frechet_distance_scipy(m1, s1, m2, s2), 1):.3f} s, "
          f"eigen route {timed(lambda: frechet_distance_eig(m1, s1, m2, s2)):.3f} s, "
          f"bootstrap per replicate {timed(lambda: bootstrap_frechet(x, y, 5), 1) / 5:.3f} s")
    dev = torch.device(a.device)
    i3d = InceptionI3d().eval().to(dev)
    clip = torch.rand(2, 3, 17, 224, 224, device=dev) * 2 - 1
    with torch.no_grad():
        s = timed(lambda: i3d(clip), 1 if a.quick else 2)
    print(f"I3D (TATS layout) 17x224x224: {s / 2:.3f} s per clip on {dev}")
    for net in ("alex", "vgg"):
        model = LPIPS(net).eval().to(dev)
        frames = torch.rand(17, 3, 128, 128, device=dev) * 2 - 1
        with torch.no_grad():
            s = timed(lambda: model(frames, frames.flip(0)), 1 if a.quick else 3)
        print(f"LPIPS {net} 128x128: {1000 * s / 17:.2f} ms per frame on {dev}")


if __name__ == "__main__":
    main()
