"""Speed of the zero-shot protocol steps on CPU: one DINO/CRW propagation step at DAVIS 480p on a stride-8 grid, one
CRF mean-field iteration on a YouTube-VIS-sized working grid, localization of a long score curve, a probe fit.

    python benchmarks/zeroshot_speed.py
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from tasks.zeroshot.crf import CRFParams, mean_field
from tasks.zeroshot.localize import LocalizeParams, localize
from tasks.zeroshot.probe import fit_probe
from tasks.zeroshot.propagation import VARIANTS, context_steps, propagate_step


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    g = torch.Generator().manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}")
    h, w, c = 60, 104, 3  # 480x832 at stride 8
    for name, d in (("dino", 3), ("dino", 16), ("dino", 64), ("crw", 16)):
        params = VARIANTS[name]
        ctx = context_steps(30, params)
        src = F.normalize(torch.randn(len(ctx), h * w, d, generator=g), dim=-1)
        lab = torch.softmax(torch.randn(len(ctx), h * w, c, generator=g), -1)
        tgt = F.normalize(torch.randn(h * w, d, generator=g), dim=-1)
        s = timed(lambda: propagate_step(tgt, src, lab, [r for _, r in ctx], h, w, params))
        print(f"propagation step ({name}, {len(ctx)} context steps, {h}x{w} cells, d={d}): {s * 1e3:.0f} ms")
    t, hh, ww, labels = 36, 92, 160, 6  # 36 frames of 368x640 at crf_scale 4, background + 5 categories
    unary = torch.rand(labels, t, hh, ww, generator=g)
    image = torch.rand(t, hh, ww, 3, generator=g) * 255
    one = CRFParams(iterations=1, theta_alpha=20.0, theta_gamma=0.75)
    s = timed(lambda: mean_field(unary, image, one), repeat=1)
    print(f"CRF: one mean-field iteration (with the colour features) on {labels}x{t}x{hh}x{ww}: {s:.2f} s")
    scores = np.random.default_rng(0).random((30 * 60 * 5, 20))  # 5 min at 30 fps, 20 classes
    s = timed(lambda: localize(scores, 30.0, LocalizeParams()), repeat=1)
    print(f"localization of 5 min x 20 classes: {s:.2f} s")
    x = np.random.default_rng(0).normal(size=(20000, 16))
    y = np.random.default_rng(1).integers(0, 21, 20000)
    s = timed(lambda: fit_probe(x, y, 21), repeat=1)
    print(f"probe fit, 20000 x 16 features, 21 classes: {s:.2f} s")


if __name__ == "__main__":
    main()
