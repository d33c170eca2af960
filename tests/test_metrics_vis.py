"""Video instance segmentation AP (YouTube-VIS semantics) and mean Jaccard on hand-computed toys; `score ytvis`."""
import argparse
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from harness.errors import DataError
from harness.metrics.vis import Track, VideoInstanceAP, track_iou
from harness.score.ytvis import YTVISScorer

H, W = 8, 10


def rle(m):
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def box(y0, x0, h, w):
    m = np.zeros((H, W), bool)
    m[y0:y0 + h, x0:x0 + w] = True
    return m


def track(frames, category=1, score=1.0, video=1, iscrowd=False):
    return Track(video, category, [None if f is None else _bytes(rle(f)) for f in frames], score=score,
                 iscrowd=iscrowd)


def _bytes(r):
    return {"size": r["size"], "counts": r["counts"].encode("ascii")}


def test_spatio_temporal_iou_by_hand():
    g = track([box(0, 0, 2, 2), None])  # 4 px, then absent
    d = track([box(0, 0, 1, 2), box(4, 4, 1, 3)])  # 2 px inside the truth, then 3 px where the truth is absent
    assert track_iou([d], [g])[0, 0] == pytest.approx(2 / (4 + 3))
    assert track_iou([g], [g])[0, 0] == 1.0
    empty = track([None, None])
    assert track_iou([empty], [empty])[0, 0] == 0.0  # empty union -> 0, as the reference


def test_identical_prediction_scores_one_everywhere():
    gts = [track([box(0, 0, 3, 3), box(1, 1, 3, 3)], category=1),
           track([box(4, 5, 3, 4), None], category=2)]
    m = VideoInstanceAP(categories=[1, 2])
    m.update(1, gts, [Track(g.video, g.category, g.segmentations, score=0.9) for g in gts])
    r = m.compute()
    for key in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "mean_jaccard", "AP_small", "AR_small"):
        assert r[key] == pytest.approx(1.0), key
    assert r["AP_medium"] == -1 and r["AP_large"] == -1  # no true track of those sizes, as the reference prints


def test_known_ap_recall_and_jaccard():
    g1, g2 = track([box(0, 0, 3, 3)] * 2), track([box(4, 5, 3, 4)] * 2)
    good = Track(1, 1, g1.segmentations, score=0.9)
    false = Track(1, 1, track([box(0, 7, 2, 2)] * 2).segmentations, score=0.8)
    m = VideoInstanceAP()
    m.update(1, [g1, g2], [false, good])
    r = m.compute()
    # ranked TP, FP over 2 truths: precision 1 up to recall 0.5 -> 51 of the 101 recall points at every IoU
    assert r["AP"] == pytest.approx(51 / 101) and r["AP50"] == pytest.approx(51 / 101)
    assert r["AR1"] == 0.5 and r["AR100"] == 0.5
    assert r["mean_jaccard"] == pytest.approx(0.5)  # g1 found exactly, g2 not at all
    # with the scores swapped the false track comes first: precision 0.5 at recall 0.5
    m = VideoInstanceAP()
    m.update(1, [g1, g2], [Track(1, 1, false.segmentations, score=0.9), Track(1, 1, good.segmentations, score=0.8)])
    r = m.compute()
    assert r["AP"] == pytest.approx(51 / 101 * 0.5, rel=1e-12) and r["AR1"] == 0.0 and r["AR10"] == 0.5


def test_partial_overlap_counts_only_below_its_iou():
    g = track([box(0, 0, 4, 4)])
    d = Track(1, 1, track([box(0, 0, 4, 3)]).segmentations, score=0.5)  # IoU 12/16 = 0.75
    m = VideoInstanceAP()
    m.update(1, [g], [d])
    r = m.compute()
    assert r["AP50"] == pytest.approx(1.0) and r["AP75"] == pytest.approx(1.0)  # IoU >= 0.75 matches
    assert r["AP"] == pytest.approx(6 / 10)  # thresholds 0.50 ... 0.75 of 0.50:0.05:0.95
    assert r["mean_jaccard"] == pytest.approx(0.75)


def test_crowd_truth_is_ignored_not_a_false_positive():
    crowd = track([box(0, 0, 4, 4)], iscrowd=True)
    real = track([box(5, 5, 2, 2)])
    on_crowd = Track(1, 1, track([box(0, 0, 4, 4)]).segmentations, score=0.9)
    on_real = Track(1, 1, real.segmentations, score=0.5)
    m = VideoInstanceAP()
    m.update(1, [crowd, real], [on_crowd, on_real])
    r = m.compute()
    assert r["AP"] == pytest.approx(1.0) and r["true_tracks"] == 1  # the crowd track is neither TP nor FP


def _files(tmp_path, results):
    videos = [{"id": 1, "height": H, "width": W, "length": 2}, {"id": 2, "height": H, "width": W, "length": 1}]
    anns = [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "areas": [9, 9],
             "segmentations": [rle(box(0, 0, 3, 3)), rle(box(0, 0, 3, 3))]},
            {"id": 2, "video_id": 2, "category_id": 2, "iscrowd": 0, "areas": [6],
             "segmentations": [[[1, 1, 4, 1, 4, 3, 1, 3]]]}]  # a polygon, as the annotation files allow
    gt = tmp_path / "instances.json"
    gt.write_text(json.dumps({"videos": videos, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                              "annotations": anns}))
    res = tmp_path / "results.json"
    res.write_text(json.dumps(results))
    return argparse.Namespace(annotations=str(gt), results=str(res))


def test_score_ytvis_end_to_end_and_errors(tmp_path):
    perfect = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [rle(box(0, 0, 3, 3))] * 2},
               {"video_id": 2, "category_id": 2, "score": 0.8, "segmentations": [None]}]
    r = YTVISScorer().score(_files(tmp_path, perfect))
    assert r["AP"] == pytest.approx(0.5) and r["mean_jaccard"] == pytest.approx(0.5)  # category 2 missed
    assert {"AP", "AP50", "AP75", "AR1", "AR10", "mean_jaccard"} <= set(r)
    bad = [dict(perfect[0], segmentations=[rle(box(0, 0, 3, 3))])]
    with pytest.raises(DataError, match=r"results.json: \[0\]: 'segmentations' must list one mask or null per frame"):
        YTVISScorer().score(_files(tmp_path, bad))
    with pytest.raises(DataError, match=r"\[1\]: video_id 7"):
        YTVISScorer().score(_files(tmp_path, [perfect[0], dict(perfect[1], video_id=7)]))
    with pytest.raises(DataError, match=r"\[0\]: category_id 9"):
        YTVISScorer().score(_files(tmp_path, [dict(perfect[0], category_id=9)]))
    with pytest.raises(DataError, match=r"\[0\]: 'score'"):
        YTVISScorer().score(_files(tmp_path, [dict(perfect[0], score=None)]))
    wrong_size = rle(np.zeros((H + 1, W), bool))
    with pytest.raises(DataError, match=r"\[0\].segmentations\[1\]: mask size"):
        YTVISScorer().score(_files(tmp_path, [dict(perfect[0], segmentations=[None, wrong_size])]))
