"""`score fvd`: FVD between a folder of real videos and a folder of generated/reconstructed ones.

Each video contributes its first `--num-frames` frames (StyleGAN-V and common_metrics take the leading frames), at
its own resolution; the detector's preprocessing (see harness/metrics/fvd.py) brings it to 224x224. A `.npy` of uint8
clips (N, T, H, W, 3) may stand in for a folder. Without the detector's weights the result is `null` with the reason.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.errors import DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".gif"}


def iter_clips(source: str | Path, num_frames: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, uint8 (num_frames, H, W, 3)) for each video of a folder, or each clip of a .npy array."""
    from harness.video import probe, read_frames

    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".npy":
        arr = np.load(source, allow_pickle=False, mmap_mode="r")
        if arr.ndim != 5 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise DataError(str(source), f"holds {arr.shape} {arr.dtype}; expected uint8 clips (N, T, H, W, 3)")
        if arr.shape[1] < num_frames:
            raise DataError(str(source), f"clips have {arr.shape[1]} frames; {num_frames} are needed")
        for i in range(arr.shape[0]):
            yield f"clip {i}", np.ascontiguousarray(arr[i, :num_frames])
        return
    if not source.is_dir():
        raise DataError(str(source), "is neither a folder of videos nor a .npy of clips")
    paths = sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise DataError(str(source), f"holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
    for p in paths:
        info = probe(p)
        if info.num_frames < num_frames:
            raise DataError(str(p), f"has {info.num_frames} frames; {num_frames} are needed")
        yield p.name, read_frames(p, np.arange(num_frames), info=info)


class FVDScorer:
    help = ("FVD between two folders of videos (StyleGAN-V or VideoGPT/TATS I3D, or content-debiased with VideoMAE); "
            "null with the reason without weights")

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--real", required=True, help="folder of real videos (or a .npy of uint8 clips N,T,H,W,3)")
        p.add_argument("--fake", required=True, help="folder of generated or reconstructed videos (or a .npy)")
        p.add_argument("--detector", default="styleganv", choices=["styleganv", "videogpt", "videomae"],
                       help="videomae: content-debiased FVD with VideoMAE-v2 features")
        p.add_argument("--num-frames", type=int, default=16, help="leading frames taken from each video")
        p.add_argument("--bootstrap", type=int, default=0, help="bootstrap replicates for a 95%% interval")
        p.add_argument("--paired", action="store_true", help="the two folders hold the same clips (same names): "
                                                             "resample videos jointly in the bootstrap")
        p.add_argument("--device", default="cpu")
        p.add_argument("--batch-size", type=int, default=4)

    def score(self, args: argparse.Namespace) -> dict:
        from harness.metrics.frechet import FeatureStats, bootstrap_frechet, frechet_from_stats
        from harness.metrics.fvd import DETECTORS, detector_unavailable, feature_extractor

        spec = DETECTORS[args.detector]
        base = {"detector": args.detector, "variant": spec.variant, "num_frames": args.num_frames}
        reason = detector_unavailable(args.detector)
        if reason:
            return {"fvd": None, "reason": reason, **base}
        extractor = feature_extractor(args.detector, args.device, args.batch_size)
        feats, names = {}, {}
        for side, source in (("real", args.real), ("fake", args.fake)):
            stats, rows, batch, names[side] = FeatureStats(), [], [], []
            for name, clip in iter_clips(source, args.num_frames):
                batch.append(clip)
                names[side].append(name)
                if len(batch) == args.batch_size:
                    rows.append(self._extract(extractor, batch))
                    batch = []
            if batch:
                rows.append(self._extract(extractor, batch))
            feats[side] = np.concatenate(rows)
            stats.update(feats[side])
            feats[side + "_stats"] = stats
        if args.paired and names["real"] != names["fake"]:
            raise DataError(args.fake, "--paired needs the same video names in both folders")
        res = frechet_from_stats(feats["real_stats"], feats["fake_stats"])
        out = {"fvd": res.value, "fvd_eig": res.value_eig, "n_real": res.n_a, "n_fake": res.n_b, **base,
               "weights_sha256": extractor.sha256}
        if res.reason:
            out["reason"] = res.reason
        if res.warning:
            out["warning"] = res.warning
        if args.bootstrap and res.value is not None:
            ci = bootstrap_frechet(feats["real"], feats["fake"], args.bootstrap, 0, paired=args.paired)
            if ci:
                out["ci_low"], out["ci_high"] = ci
        return out

    @staticmethod
    def _extract(extractor, clips: list[np.ndarray]) -> np.ndarray:
        shapes = {c.shape for c in clips}
        if len(shapes) == 1:
            return extractor(np.stack(clips))
        return np.concatenate([extractor(c[None]) for c in clips])  # mixed resolutions: one clip at a time

    @staticmethod
    def table(result: dict) -> str:
        keys = ("fvd", "fvd_eig", "ci_low", "ci_high", "n_real", "n_fake", "detector", "num_frames", "reason",
                "warning")
        return "\n".join(f"{k:>10}  {result[k]:.6f}" if isinstance(result[k], float) else f"{k:>10}  {result[k]}"
                         for k in keys if k in result)
