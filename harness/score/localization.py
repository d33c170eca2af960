"""`score thumos14` and `score activitynet`: temporal action localization mAP of a detection file."""
from __future__ import annotations

import argparse

from harness.errors import DataError
from harness.metrics.localization import ACTIVITYNET_TIOU, THUMOS14_TIOU, VARIANTS, LocalizationMAP
from harness.metrics.tal_files import (read_activitynet_ground_truth, read_detections, read_detections_json,
                                       read_thumos14_annotations)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unknown-labels", default="error", choices=["error", "ignore"],
                   help="a predicted label absent from the ground truth: stop (the reference's behaviour, default) "
                        "or drop those predictions and count them")


def _metric(args, thresholds, variant: str) -> LocalizationMAP:
    return LocalizationMAP(thresholds=thresholds, variant=variant, unknown_labels=args.unknown_labels)


def _compute(metric: LocalizationMAP, det_path: str) -> dict:
    try:
        return metric.compute()
    except ValueError as e:
        raise DataError(det_path, str(e)) from None


def _table(result: dict) -> str:
    keys = [k for k in result if k.startswith("mAP")]
    head = f"variant {result['variant']}, {result['classes']} classes"
    if result.get("dropped_predictions"):
        head += f", {result['dropped_predictions']} predictions of unknown labels dropped"
    return "\n".join([head] + [f"{k:>10}  {result[k] * 100:6.2f}" for k in keys])


class Thumos14Scorer:
    help = "THUMOS14 temporal action localization mAP at tIoU 0.3:0.1:0.7 (ActivityNet evaluator or the MATLAB kit)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--annotations", required=True, help="folder of per-class files <Class>_test.txt")
        p.add_argument("--detections", required=True,
                       help="ActivityNet-format JSON, or the kit's text format '<video> <t1> <t2> <class_id> <conf>'")
        p.add_argument("--subset", help="test or val (default: the one present in --annotations)")
        p.add_argument("--variant", default="anet", choices=list(VARIANTS))
        _add_common(p)

    def score(self, args: argparse.Namespace) -> dict:
        gt, ambiguous = read_thumos14_annotations(args.annotations, args.subset)
        metric = _metric(args, THUMOS14_TIOU, args.variant)
        # Ambiguous spans are never ground truth; only the kit variant uses them (to drop overlapping FPs).
        metric.extend(gt, read_detections(args.detections), ambiguous if args.variant == "thumos14-kit" else ())
        return _compute(metric, args.detections)

    table = staticmethod(_table)


class ActivityNetScorer:
    help = "ActivityNet 1.3 temporal action localization mAP at tIoU 0.5:0.05:0.95 (eval_detection.py)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--ground-truth", required=True, help="activity_net.v1-3.min.json")
        p.add_argument("--detections", required=True, help='JSON {"results": {video: [{label, score, segment}]}}')
        p.add_argument("--subset", default="validation")
        _add_common(p)

    def score(self, args: argparse.Namespace) -> dict:
        metric = _metric(args, ACTIVITYNET_TIOU, "anet")
        metric.extend(read_activitynet_ground_truth(args.ground_truth, args.subset),
                      read_detections_json(args.detections))
        return _compute(metric, args.detections)

    table = staticmethod(_table)
