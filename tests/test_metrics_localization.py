"""Temporal action localization mAP: hand-computed AP for the ActivityNet and THUMOS14-kit variants, files, scorers."""
import argparse
import json

import numpy as np
import pytest

from harness.errors import DataError
from harness.metrics.localization import (LocalizationMAP, interpolated_ap, matlab_colon, segment_iou)
from harness.metrics.tal_files import read_detections, read_thumos14_annotations
from harness.score.localization import ActivityNetScorer, Thumos14Scorer

GT = [("v1", 0.0, 10.0, "A"), ("v1", 20.0, 30.0, "A"), ("v2", 0.0, 10.0, "A"), ("v2", 40.0, 50.0, "B")]
PRED = [
    ("v1", 0.0, 10.0, "A", 0.9),  # tIoU 1 with the first A of v1
    ("v1", 0.0, 10.0, "A", 0.8),  # a duplicate: that truth is taken, the next one has tIoU 0 -> FP
    ("v2", 0.0, 5.0, "A", 0.7),  # tIoU exactly 0.5
    ("v3", 0.0, 10.0, "A", 0.6),  # a video without ground truth -> FP
    ("v1", 20.0, 29.0, "A", 0.5),  # tIoU 0.9
]  # class B has no prediction -> AP 0


def _map(variant="anet", thresholds=(0.5, 0.7), ambiguous=()):
    m = LocalizationMAP(thresholds=thresholds, variant=variant)
    m.extend(GT, PRED, ambiguous)
    return m.compute()


def test_segment_iou_and_voc_ap_by_hand():
    iou = segment_iou([0, 5], [10, 9], [0, 8], [5, 20])
    assert iou.tolist() == [[0.5, 2 / 20], [0.0, 1 / 15]]
    assert np.isnan(segment_iou([3], [3], [3], [3])[0, 0])  # zero-length pair, as the reference
    # precision [1, .5, 2/3], recall [1/3, 1/3, 2/3]: 1/3 * 1 + 1/3 * 2/3 (+ 1/3 * 0 past the last recall)
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([1 / 3, 1 / 3, 2 / 3])) == pytest.approx(5 / 9)


def test_anet_ap_by_hand():
    r = _map()
    # θ = 0.5: TP FP TP FP TP, 3 truths: precision 1, .5, 2/3, .5, .6 at recall 1/3, 1/3, 2/3, 2/3, 1
    ap_a_05 = (1 + 2 / 3 + 0.6) / 3
    # θ = 0.7: the tIoU 0.5 prediction is now a FP: TP FP FP FP TP -> (1 + 0.4) / 3
    ap_a_07 = (1 + 0.4) / 3
    assert r["per_class_ap"]["A"] == pytest.approx([ap_a_05, ap_a_07])
    assert r["per_class_ap"]["B"] == [0.0, 0.0]
    assert r["mAP@0.50"] == pytest.approx(ap_a_05 / 2) and r["mAP@0.70"] == pytest.approx(ap_a_07 / 2)
    assert r["mAP-avg"] == pytest.approx((ap_a_05 + ap_a_07) / 4)
    assert r["variant"] == "anet" and r["classes"] == 2


def test_kit_variant_differs_where_it_should():
    r = _map("thumos14-kit", thresholds=(0.5,))
    # strict >: the tIoU 0.5 detection no longer matches; GT-driven matching gives TP at .9 and .5, FPs at .8 .7 .6
    # 11-point AP over recall points 0..1: recall 1/3 reached with precision 1 (4 points: 0, .1, .2, .3),
    # recall 2/3 with precision .4 (points .4, .5, .6), nothing above
    assert r["per_class_ap"]["A"] == pytest.approx([(4 * 1 + 3 * 0.4) / 11])
    # an Ambiguous span overlapping the detection in v3 drops it from the false positives
    r = _map("thumos14-kit", thresholds=(0.5,), ambiguous=[("v3", 0.0, 3.0)])
    assert r["per_class_ap"]["A"] == pytest.approx([(4 * 1 + 3 * 0.5) / 11])
    # the ActivityNet variant ignores Ambiguous spans
    assert _map(ambiguous=[("v3", 0.0, 3.0)])["per_class_ap"] == _map()["per_class_ap"]


def test_matlab_colon_values():
    pts = matlab_colon(0.0, 0.1, 1.0)
    assert len(pts) == 11 and pts[3] == 3 * 0.1 and pts[7] == 1 - 3 * 0.1 and pts[5] == 0.5
    assert pts[3] != 0.3  # why a recall of exactly 0.3 does not reach the kit's 4th point


def test_tied_scores_follow_the_reference_argsort():
    # Two detections with the same score; at θ = 0.7 only the exact one can match. The reference orders by
    # np.argsort(s)[::-1], which for a two-element array puts the later detection first.
    gt = [("v", 0.0, 10.0, "A")]
    exact, partial = ("v", 0.0, 10.0, "A", 0.5), ("v", 0.0, 6.0, "A", 0.5)  # tIoU 1 and 0.6
    m = LocalizationMAP(thresholds=(0.7,))
    m.extend(gt, [exact, partial])
    assert m.compute()["per_class_ap"]["A"] == [0.5]  # partial ranked first: FP, then TP
    m = LocalizationMAP(thresholds=(0.7,))
    m.extend(gt, [partial, exact])
    assert m.compute()["per_class_ap"]["A"] == [1.0]


def test_unknown_labels_error_or_are_dropped():
    m = LocalizationMAP(thresholds=(0.5,))
    m.extend(GT, PRED + [("v1", 0.0, 1.0, "Zzz", 0.1)])
    with pytest.raises(ValueError, match="Zzz"):
        m.compute()
    m = LocalizationMAP(thresholds=(0.5,), unknown_labels="ignore")
    m.extend(GT, PRED + [("v1", 0.0, 1.0, "Zzz", 0.1)])
    r = m.compute()
    assert r["dropped_predictions"] == 1 and r["per_class_ap"]["A"] == pytest.approx([(1 + 2 / 3 + 0.6) / 3])


def test_perfect_detections_give_map_one():
    m = LocalizationMAP()
    m.extend(GT, [(v, s, e, lab, 1.0) for v, s, e, lab in GT])
    r = m.compute()
    assert all(r[k] == 1.0 for k in ("mAP@0.30", "mAP@0.50", "mAP@0.70", "mAP-avg"))


# ------------------------------------------------------------------------------------------- files and scorers
def _thumos_folder(tmp_path):
    folder = tmp_path / "annotations_test"
    folder.mkdir()
    (folder / "A_test.txt").write_text("v1  0.0 10.0\nv1  20.0 30.0\nv2  0.0 10.0\n")
    (folder / "B_test.txt").write_text("v2  40.0 50.0\n")
    (folder / "Ambiguous_test.txt").write_text("v3  0.0 3.0\n")
    (folder / "readme.txt").write_text("not a class file\n")
    return folder


def _detections_json(tmp_path, rows=PRED):
    res = {}
    for v, s, e, lab, sc in rows:
        res.setdefault(v, []).append({"label": lab, "score": sc, "segment": [s, e]})
    path = tmp_path / "det.json"
    path.write_text(json.dumps({"version": "test", "results": res}))
    return path


def test_thumos14_reader_and_scorer(tmp_path):
    folder = _thumos_folder(tmp_path)
    gt, amb = read_thumos14_annotations(folder)
    assert gt == GT and amb == [("v3", 0.0, 3.0)]
    args = argparse.Namespace(annotations=str(folder), detections=str(_detections_json(tmp_path)), subset=None,
                              variant="anet", unknown_labels="error")
    r = Thumos14Scorer().score(args)
    assert set(k for k in r if k.startswith("mAP")) == {"mAP@0.30", "mAP@0.40", "mAP@0.50", "mAP@0.60", "mAP@0.70",
                                                        "mAP-avg"}
    assert r["mAP@0.50"] == pytest.approx((1 + 2 / 3 + 0.6) / 6)
    args.variant = "thumos14-kit"
    assert Thumos14Scorer().score(args)["mAP@0.50"] == pytest.approx((4 + 3 * 0.5) / 11 / 2)


def test_kit_text_detections(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("video_test_1.mpeg 1.0 2.5 7 0.9\nvideo_test_2 3 4 99 0.5\nvideo_test_2 3 4 97 0.4\n")
    with pytest.warns(UserWarning, match="skipped 1"):
        rows = read_detections(path)
    assert rows == [("video_test_1", 1.0, 2.5, "BaseballPitch", 0.9), ("video_test_2", 3.0, 4.0,
                                                                       "VolleyballSpiking", 0.4)]


def test_malformed_files_name_the_entry(tmp_path):
    folder = _thumos_folder(tmp_path)
    (folder / "B_test.txt").write_text("v2  40.0\n")
    with pytest.raises(DataError, match=r"B_test.txt:1"):
        read_thumos14_annotations(folder)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"results": {"v1": [{"label": "A", "score": 0.5, "segment": [0, 1]},
                                                  {"label": "A", "score": "high", "segment": [0, 1]}]}}))
    with pytest.raises(DataError, match=r"bad.json: results\['v1'\]\[1\].score"):
        read_detections(bad)
    bad.write_text(json.dumps({"results": {"v1": [{"label": "A", "score": 0.5, "segment": [0]}]}}))
    with pytest.raises(DataError, match=r"results\['v1'\]\[0\]: 'segment'"):
        read_detections(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_detections(bad)


def test_activitynet_scorer_uses_the_subset(tmp_path):
    db = {"v1": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "A"}]},
          "v9": {"subset": "training", "annotations": [{"segment": [0, 10], "label": "B"}]}}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"version": "1.3", "taxonomy": [], "database": db}))
    det = _detections_json(tmp_path, [("v1", 0.0, 9.0, "A", 0.9)])
    args = argparse.Namespace(ground_truth=str(gt), detections=str(det), subset="validation", unknown_labels="error")
    r = ActivityNetScorer().score(args)
    # tIoU 0.9: a match at 0.50 ... 0.90, not at 0.95 (9 of 10 thresholds); one class
    assert r["classes"] == 1 and r["mAP@0.90"] == 1.0 and r["mAP@0.95"] == 0.0
    assert r["mAP-avg"] == pytest.approx(0.9)
    assert len([k for k in r if k.startswith("mAP@")]) == 10
