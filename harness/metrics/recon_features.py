"""The weight-based metrics of reconstruction tasks: LPIPS per video, and I3D features per clip for rFVD.

Each metric is resolved once: when its weight files are absent it costs nothing and is reported as `null` with the
reason. Per-clip I3D features of the reference and of the reconstruction are kept in the cached records, so rFVD
(a set-level number) is computed at aggregate time, with a bootstrap interval over videos, and can be recomputed
from the cache without running the model again.
"""
from __future__ import annotations

import threading

from typing import Any

import numpy as np
import torch

from harness.metrics.frechet import bootstrap_frechet, frechet_from_features
from harness.metrics.fvd import DETECTORS, detector_unavailable, feature_extractor
from harness.metrics.lpips import NETS, load_lpips, lpips_frames, lpips_unavailable
from harness.task import Metric, Record
from harness.weights import find_weight, weight_sha256


class FeatureMetrics:
    def __init__(self, lpips_nets: tuple[str, ...] = ("alex", "vgg"),
                 fvd_detectors: tuple[str, ...] = ("styleganv", "videogpt")):
        self.validate(lpips_nets, fvd_detectors)
        self.lpips_nets, self.detectors = tuple(lpips_nets), tuple(fvd_detectors)
        self.lpips_reason = {n: lpips_unavailable(n) for n in self.lpips_nets}
        self.fvd_reason = {d: detector_unavailable(d) for d in self.detectors}
        self._lpips: dict[str, Any] = {}
        self._i3d: dict[str, Any] = {}
        self._hashes: dict[str, str | None] | None = None
        self._loading = threading.Lock()  # the runner scores batches on several threads: load each network once

    @staticmethod
    def validate(lpips_nets, fvd_detectors) -> None:
        unknown = [n for n in lpips_nets if n not in NETS] + [d for d in fvd_detectors if d not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown LPIPS backbone or FVD detector {unknown} (LPIPS: {', '.join(NETS)}; "
                             f"FVD: {', '.join(DETECTORS)})")

    def weight_hashes(self) -> dict[str, str | None]:
        """sha256 of every metric weight file this configuration uses (None when absent)."""
        if self._hashes is None:
            names = [f for n in self.lpips_nets for f in NETS[n][:2]] + [DETECTORS[d].weight for d in self.detectors]
            self._hashes = {}
            for name in names:
                path = find_weight(name)
                self._hashes[name] = weight_sha256(path) if path else None
        return self._hashes

    # -- per batch -------------------------------------------------------------------------------------------
    def video_values(self, frames: torch.Tensor, out: torch.Tensor, device) -> list[dict[str, Any]]:
        """Per video: `lpips_<net>` (mean over frames) and `lpips_<net>_frames`, for each available backbone."""
        values: list[dict[str, Any]] = [{} for _ in range(len(frames))]
        for net in self.lpips_nets:
            if self.lpips_reason[net]:
                continue
            with self._loading:
                if net not in self._lpips:
                    self._lpips[net] = load_lpips(net, device)[0]
            b, t = frames.shape[:2]
            per_frame = lpips_frames(self._lpips[net], frames.flatten(0, 1), out.flatten(0, 1)).reshape(b, t)
            for i in range(b):
                values[i][f"lpips_{net}"] = float(per_frame[i].mean())
                values[i][f"lpips_{net}_frames"] = per_frame[i].tolist()
        return values

    def clip_features(self, frames: torch.Tensor, out: torch.Tensor, device) -> dict[str, tuple[np.ndarray, ...]]:
        """{"i3d_<detector>": (reference features (B, d), reconstruction features (B, d))} (d = 400 for I3D)."""
        result = {}
        for det in self.detectors:
            if self.fvd_reason[det]:
                continue
            with self._loading:
                if det not in self._i3d:
                    self._i3d[det] = feature_extractor(det, device)
            extractor = self._i3d[det]
            result[f"i3d_{det}"] = (extractor(frames), extractor(out))
        return result

    # -- over the set ----------------------------------------------------------------------------------------
    def aggregate(self, records: list[Record], bootstrap_iters: int) -> dict[str, Metric]:
        from harness.stats import mean_metric

        m: dict[str, Metric] = {}
        n = len(records)
        for net in self.lpips_nets:
            key = f"lpips_{net}"
            vals = [r.values[key] for r in records if key in r.values]
            if vals:
                m[key] = mean_metric(vals, False, f"LPIPS v0.1 {net} (lpips package semantics), inputs [-1,1], "
                                                  "spatial average, mean over frames then videos")
            else:
                m[key] = Metric(None, n, False, reason=self.lpips_reason[net] or "not computed for these samples")
        for det in self.detectors:
            m.update(self._fvd(det, records, bootstrap_iters))
        return m

    def _fvd(self, det: str, records: list[Record], iters: int) -> dict[str, Metric]:
        key, name = f"rfvd_{det}", f"i3d_{det}"
        have = [r for r in records if f"{name}_real" in r.arrays]
        variant = DETECTORS[det].variant + "; Fréchet distance of reference vs reconstruction features"
        if not have:
            reason = self.fvd_reason[det] or "no I3D features were computed for these samples"
            return {key: Metric(None, len(records), False, variant=variant, reason=reason)}
        real = np.stack([r.arrays[f"{name}_real"] for r in have]).astype(np.float64)
        fake = np.stack([r.arrays[f"{name}_fake"] for r in have]).astype(np.float64)
        res = frechet_from_features(real, fake)
        if res.value is None:
            return {key: Metric(None, len(have), False, variant=variant, reason=res.reason)}
        ci = bootstrap_frechet(real, fake, iters, seed=0, paired=True)
        sha = self.weight_hashes().get(DETECTORS[det].weight)
        common = dict(ci_low=ci and ci[0], ci_high=ci and ci[1], ci_method=ci and "percentile bootstrap over videos "
                      f"(paired, {iters} replicates, robust route)", warning=res.warning)
        return {
            key: Metric(res.value, len(have), False, variant=f"{variant}: np.cov + scipy sqrtm (StyleGAN-V); "
                                                             f"weights sha256 {sha}", **common),
            f"{key}_eig": Metric(res.value_eig, len(have), False, variant=f"{variant}: robust route (eigenvalues of "
                                                                          "S1^1/2 S2 S1^1/2)", **common),
        }
