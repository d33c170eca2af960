"""`score recon`: fidelity of a reconstruction against its reference, two videos or two folders of videos."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import DataError
from harness.metrics.pixel import pooled_psnr, video_fidelity
from harness.video import read_frames

VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mkv", ".mov"}


class ReconScorer:
    help = "PSNR (per frame, per video) and SSIM of reconstructions against references"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--reference", required=True, help="a video, or a folder of videos")
        p.add_argument("--reconstruction", required=True, help="a video, or a folder with the same file names")
        p.add_argument("--ssim-variant", default="gaussian11", choices=["gaussian11", "skimage-uniform7"])

    def score(self, args: argparse.Namespace) -> dict:
        ref, rec = Path(args.reference), Path(args.reconstruction)
        if ref.is_dir():
            return self._score_folders(ref, rec, args.ssim_variant)
        return self._score_pair(ref, rec, args.ssim_variant)

    @staticmethod
    def _score_pair(ref: Path, rec: Path, variant: str) -> dict:
        a, b = read_frames(ref, backend="pyav"), read_frames(rec, backend="pyav")
        if a.shape != b.shape:
            raise DataError(str(rec), f"has frames {b.shape}, the reference {ref} has {a.shape}")
        fid = video_fidelity(a, b, variant)
        return {"frames": fid.frames, "psnr_frame": fid.psnr_frame, "psnr_video": fid.psnr_video, "ssim": fid.ssim,
                "ssim_variant": variant, "identical_frames": fid.identical_frames}

    def _score_folders(self, ref: Path, rec: Path, variant: str) -> dict:
        names = sorted(p.name for p in ref.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not names:
            raise DataError(str(ref), "holds no videos")
        per_video, sse, values = {}, 0.0, 0
        for name in names:
            if not (rec / name).exists():
                raise DataError(str(rec / name), "reconstruction is missing")
            a, b = read_frames(ref / name, backend="pyav"), read_frames(rec / name, backend="pyav")
            if a.shape != b.shape:
                raise DataError(str(rec / name), f"has frames {b.shape}, the reference has {a.shape}")
            fid = video_fidelity(a, b, variant)
            per_video[name] = {"frames": fid.frames, "psnr_frame": fid.psnr_frame, "psnr_video": fid.psnr_video,
                               "ssim": fid.ssim}
            sse, values = sse + fid.sse, values + fid.values
        mean = lambda k: sum(v[k] for v in per_video.values()) / len(per_video)  # noqa: E731
        return {"videos": len(per_video), "frames": sum(v["frames"] for v in per_video.values()),
                "psnr_frame": mean("psnr_frame"), "psnr_video": mean("psnr_video"),
                "psnr_pooled": pooled_psnr(sse, values), "ssim": mean("ssim"), "ssim_variant": variant,
                "per_video": per_video}

    @staticmethod
    def table(result: dict) -> str:
        keys = [k for k in ("videos", "frames", "psnr_frame", "psnr_video", "psnr_pooled", "ssim") if k in result]
        return "\n".join(f"{k:>12}  {result[k]:.6f}" if isinstance(result[k], float) else f"{k:>12}  {result[k]}"
                         for k in keys)
