"""`score ytvis`: YouTube-VIS / OVIS video instance segmentation AP and mean Jaccard of a results file."""
from __future__ import annotations

import argparse

from harness.metrics.vis import VideoInstanceAP
from harness.metrics.ytvis_files import read_ytvis_annotations, read_ytvis_results

KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "mean_jaccard")


class YTVISScorer:
    help = "YouTube-VIS AP (cocoapi ytvoseval) and mean Jaccard of a results JSON"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--annotations", required=True, help="instances.json of the evaluated split")
        p.add_argument("--results", required=True,
                       help="JSON list of {video_id, category_id, score, segmentations: [RLE or null per frame]}")

    def score(self, args: argparse.Namespace) -> dict:
        videos, cats, gts = read_ytvis_annotations(args.annotations)
        preds = read_ytvis_results(args.results, videos, cats)
        metric = VideoInstanceAP(categories=cats)
        by_video: dict = {v: ([], []) for v in videos}
        for g in gts:
            by_video[g.video][0].append(g)
        for d in preds:
            by_video[d.video][1].append(d)
        for v, (g, d) in by_video.items():
            metric.update(v, g, d)
        return metric.compute()

    @staticmethod
    def table(result: dict) -> str:
        head = f"{result['variant']}: {result['categories']} categories, {result['true_tracks']} true tracks"
        rows = [f"{k:>13}  {result[k]:.4f}" if isinstance(result[k], float) else f"{k:>13}  {result[k]}"
                for k in KEYS]
        return "\n".join([head] + rows)
