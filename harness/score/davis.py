"""`score davis`: J&F of a results folder of label PNGs against a DAVIS 2017 root, as davis2017-evaluation."""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

from harness.errors import DataError
from harness.metrics.davis import (MAX_UNSUPERVISED_OBJECTS, STAT_KEYS, TASKS, DavisJF, ObjectIdError,
                                   object_count, semi_supervised_scores, unsupervised_scores)
from harness.metrics.davis_files import (annotation_folder, davis_sequences, read_label_stack, result_paths,
                                         sequence_annotation_paths)


def _check_ids(pred, paths, limit: int, task: str) -> None:
    """Name the first result file whose ids exceed what the task allows."""
    maxes = pred.reshape(len(pred), -1).max(1)
    bad = maxes > limit
    if bad.any():
        i = int(bad.argmax())
        allowed = f"the sequence has {limit} objects" if task == "semi-supervised" else f"at most {limit} are allowed"
        raise DataError(str(paths[i]), f"uses object id {int(maxes[i])}; {allowed}")


class DavisScorer:
    help = "DAVIS 2017 J&F (region and boundary) of result PNGs, as davis2017-evaluation"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--davis-root", required=True, help="folder with JPEGImages/, Annotations/, ImageSets/")
        p.add_argument("--results", required=True, help="folder of <sequence>/<frame>.png label maps")
        p.add_argument("--set", default="val", help="subset list ImageSets/2017/<set>.txt (default val)")
        p.add_argument("--task", default="semi-supervised", choices=list(TASKS))
        p.add_argument("--resolution", default="480p")

    def score(self, args: argparse.Namespace) -> dict:
        ann_root = annotation_folder(args.davis_root, args.task, args.resolution)
        sequences = davis_sequences(args.davis_root, args.set, args.task)
        metric = DavisJF(task=args.task)
        # The next sequence's PNGs are decoded (zlib releases the GIL) while this one is scored.
        with ThreadPoolExecutor(1) as prefetch:
            pending = prefetch.submit(self._load, ann_root, args, sequences[0])
            for i, seq in enumerate(sequences):
                k, gt, pred, pred_paths = pending.result()
                if i + 1 < len(sequences):
                    pending = prefetch.submit(self._load, ann_root, args, sequences[i + 1])
                try:
                    if args.task == "semi-supervised":
                        j, f = semi_supervised_scores(gt, pred, k)
                        ids = range(1, len(j) + 1)
                    else:
                        j, f, ids = unsupervised_scores(gt, pred)
                except ObjectIdError as e:
                    raise DataError(str(pred_paths[0].parent), str(e)) from None
                metric.add_scores(seq, j, f, ids)
        try:
            return metric.compute()
        except ValueError as e:  # e.g. no sequence has an object in its first frame
            raise DataError(str(ann_root), str(e)) from None

    @staticmethod
    def _load(ann_root, args, seq: str):
        """(object count, true maps, predicted maps, result paths) of the frames one sequence scores."""
        gt_paths = sequence_annotation_paths(ann_root, seq)
        if args.task == "semi-supervised":
            if len(gt_paths) < 3:
                raise DataError(str(ann_root / seq), "needs at least 3 annotated frames (first and last are not "
                                                     "scored)")
            # the object count comes from frame 0; frames 0 and N-1 are not scored (nor read beyond frame 0)
            gt = read_label_stack(gt_paths[:-1])
            k = object_count(gt[0])
            gt_paths, gt = gt_paths[1:-1], gt[1:]
        else:
            gt = read_label_stack(gt_paths)
            k = object_count(gt[0])
        pred_paths = result_paths(args.results, seq, [p.stem for p in gt_paths])
        pred = read_label_stack(pred_paths, gt.shape[1:])
        limit = k if args.task == "semi-supervised" else MAX_UNSUPERVISED_OBJECTS
        _check_ids(pred, pred_paths, limit, args.task)
        return k, gt, pred, pred_paths

    @staticmethod
    def table(result: dict) -> str:
        lines = [f"{result['variant']}: {result['objects']} objects in {len(result['per_sequence'])} sequences",
                 "  ".join(f"{k:>8}" for k in STAT_KEYS), "  ".join(f"{result[k]:8.3f}" for k in STAT_KEYS), "",
                 f"{'sequence':<24} {'J-Mean':>8} {'F-Mean':>8}"]
        lines += [f"{seq:<24} {v['J-Mean']:8.3f} {v['F-Mean']:8.3f}" for seq, v in result["per_sequence"].items()]
        return "\n".join(lines)
