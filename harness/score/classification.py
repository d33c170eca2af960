"""`score classification`: top-k and mean-class accuracy of class scores (mmaction2 semantics)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.score.arrays import load_array


def _load_json(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """{"scores": [[...], ...], "labels": [...]} or [{"scores": [...], "label": k}, ...]."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"is not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "scores" in data and "labels" in data:
        scores, labels = data["scores"], data["labels"]
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "scores" not in item or "label" not in item:
                raise DataError(str(path), f"entry {i} needs keys 'scores' and 'label'")
        scores, labels = [d["scores"] for d in data], [d["label"] for d in data]
    else:
        raise DataError(str(path), "expected {'scores': [[...]], 'labels': [...]} or a list of "
                                   "{'scores': [...], 'label': k}")
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(str(path), f"scores are not a rectangular numeric array ({exc})") from exc
    return s, np.asarray(labels)


class ClassificationScorer:
    help = "top-1/top-5 and mean-class accuracy from class scores (N x C, or N x views x C averaged)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--scores", required=True, help="N x C (or N x views x C) scores: .npy/.npz/.csv, or a .json "
                                                       "with scores and labels")
        p.add_argument("--labels", help="N integer labels (0-based): .npy/.csv/.txt/.json")
        p.add_argument("--average", default="score", choices=["score", "prob"],
                       help="view averaging of 3-D scores: raw scores or softmax probabilities (mmaction2)")
        p.add_argument("--topk", default="1,5", help="comma-separated k values")

    def score(self, args: argparse.Namespace) -> dict:
        from harness.metrics.classification import average_views, classification_metrics

        path = Path(args.scores)
        if path.suffix.lower() == ".json" and not args.labels:
            scores, labels = _load_json(path)
            label_path = path
        else:
            if not args.labels:
                raise DataError(str(path), "needs --labels (or a .json holding scores and labels)")
            scores, label_path = load_array(path, ndim=(2, 3)), Path(args.labels)
            labels = load_array(label_path, ndim=(1, 2), finite=False).reshape(-1)
        if scores.ndim not in (2, 3):
            raise DataError(str(path), f"scores have shape {scores.shape}; expected N x C or N x views x C")
        bad = np.argwhere(~np.isfinite(scores))
        if bad.size:
            raise DataError(str(path), f"score entry {tuple(int(i) for i in bad[0])} is not finite")
        if len(labels) != len(scores):
            raise DataError(str(label_path), f"has {len(labels)} labels for {len(scores)} score rows")
        labels_f = np.asarray(labels, dtype=np.float64)
        c = scores.shape[-1]
        for i, v in enumerate(labels_f):
            if not (np.isfinite(v) and v == int(v) and 0 <= v < c):
                raise DataError(str(label_path), f"label entry {i} is {labels[i]}; labels must be integers in "
                                                 f"[0, {c})")
        ks = tuple(int(k) for k in str(args.topk).split(",") if k)
        out = classification_metrics(average_views(scores, args.average), labels_f.astype(np.int64), ks)
        out["views"] = int(scores.shape[1]) if scores.ndim == 3 else 1
        out["view_average"] = args.average
        out["tie_rule"] = "top-k: stable argsort (tied scores: higher class index first); mean-class: argmax (lower)"
        return out

    @staticmethod
    def table(result: dict) -> str:
        keys = [k for k in result if k.startswith("top")] + ["mean_class_accuracy", "mean_class_recall_present", "n",
                                                            "classes", "views"]
        return "\n".join(f"{k:>26}  {result[k]:.6f}" if isinstance(result[k], float) else f"{k:>26}  {result[k]}"
                         for k in keys if k in result)
