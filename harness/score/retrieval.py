"""`score retrieval`: R@1/5/10, MdR and MnR, text->video and video->text, from a texts x videos similarity matrix."""
from __future__ import annotations

import argparse

import numpy as np

from harness.errors import DataError
from harness.score.arrays import load_array


class RetrievalScorer:
    help = "text-video retrieval R@K, MdR, MnR from a texts x videos similarity matrix (CLIP4Clip definitions)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--sim", required=True, help="texts x videos similarities (.npy/.npz/.csv); square with the "
                                                    "true pairs on the diagonal unless --caption-video is given")
        p.add_argument("--caption-video", help="for several captions per video: the video index of each text row")

    def score(self, args: argparse.Namespace) -> dict:
        from harness.metrics.retrieval import retrieval_metrics

        sim = load_array(args.sim, ndim=2)
        cv = None
        if args.caption_video:
            cvf = load_array(args.caption_video, ndim=(1, 2), finite=False).reshape(-1)
            if len(cvf) != sim.shape[0]:
                raise DataError(args.caption_video,
                                f"has {len(cvf)} entries for {sim.shape[0]} text rows of {args.sim}")
            for i, v in enumerate(cvf):
                if not (np.isfinite(v) and v == int(v) and 0 <= v < sim.shape[1]):
                    raise DataError(args.caption_video, f"entry {i} is {v}; video indices must be integers in "
                                                        f"[0, {sim.shape[1]})")
            cv = cvf.astype(np.int64)
        elif sim.shape[0] != sim.shape[1]:
            raise DataError(args.sim, f"is {sim.shape[0]} x {sim.shape[1]}: a non-square matrix needs --caption-video")
        try:
            res = retrieval_metrics(sim, cv)
        except ValueError as exc:
            raise DataError(args.caption_video or args.sim, str(exc)) from exc
        out = {f"t2v_{k}": v for k, v in res["t2v"].items()}
        out.update({f"v2t_{k}": v for k, v in res["v2t"].items()})
        out["texts"], out["videos"] = int(sim.shape[0]), int(sim.shape[1])
        out["variant"] = ("rank = #items scoring strictly higher than the true match; R@K in percent; MdR/MnR 1-based"
                          + ("; several captions per video: t2v median = lower middle (torch.median), v2t by "
                             "max over each video's captions" if cv is not None else ""))
        return out

    @staticmethod
    def table(result: dict) -> str:
        lines = [f"{'':>5}  {'R@1':>8} {'R@5':>8} {'R@10':>8} {'MdR':>8} {'MnR':>8} {'n':>6}"]
        for d in ("t2v", "v2t"):
            lines.append(f"{d:>5}  " + " ".join(f"{result[f'{d}_{k}']:8.2f}" for k in ("R@1", "R@5", "R@10", "MdR",
                                                                                       "MnR"))
                         + f" {result[f'{d}_n']:6d}")
        return "\n".join(lines)
