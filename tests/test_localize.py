"""Temporal localization post-processing on toy score curves computed by hand; the open-vocabulary class split."""
import numpy as np
import pytest

from tasks.zeroshot.localize import (LocalizeParams, candidates, localize, nms, runs, segment_score, sliding_mean,
                                     tiou)
from tasks.zeroshot.vocabulary import seen_unseen


def test_sliding_mean_is_centred_and_divides_by_the_frames_inside():
    x = np.array([0, 0, 3, 3, 3, 0], float)
    assert sliding_mean(x, 3).tolist() == pytest.approx([0, 1, 2, 3, 2, 1.5])
    # even length: t averages t-1 .. t+2
    assert sliding_mean(x, 4).tolist() == pytest.approx([1, 1.5, 2.25, 2.25, 2, 1.5])
    assert sliding_mean(x, 1).tolist() == x.tolist()
    two = sliding_mean(np.stack([x, 2 * x], 1), 3)
    assert two[:, 1].tolist() == pytest.approx((2 * two[:, 0]).tolist())
    assert sliding_mean(np.ones(40), 25).tolist() == pytest.approx([1.0] * 40)


def test_runs_are_maximal():
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
    assert runs(np.ones(3, bool)) == [(0, 3)]
    assert runs(np.zeros(3, bool)) == []


def test_candidates_threshold_the_normalized_curve_and_score_each_run():
    curve = np.array([0, 1, 2, 3, 2, 1.5])  # normalized: 0, 1/3, 2/3, 1, 2/3, 1/2
    assert candidates(curve, (0.5,), scoring="mean") == [(2, 6, pytest.approx(2.125))]
    # contrast: run [2, 6) has margin round(4 / 4) = 1: frame 1 before, none after -> 2.125 - 1
    assert candidates(curve, (0.5,)) == [(2, 6, pytest.approx(1.125))]
    got = candidates(curve, (0.9, 0.5, 0.6), scoring="mean")  # each run once, thresholds ascending
    assert got == [(2, 6, pytest.approx(2.125)), (2, 5, pytest.approx(7 / 3)), (3, 4, pytest.approx(3.0))]
    # contrast of [3, 4): 3 - mean(2, 2); of [2, 5): 7/3 - mean(1, 1.5)
    assert [c[2] for c in candidates(curve, (0.9, 0.6))] == pytest.approx([7 / 3 - 1.25, 1.0])
    assert candidates(curve, (0.5,), min_frames=5) == []
    assert candidates(np.full(5, 0.3), (0.1,)) == []  # a constant curve says nothing
    assert segment_score(curve, 0, 6, "contrast") == pytest.approx(curve.mean())  # no margin: the mean
    raw = np.array([0, 0, 4, 4, 4, 0.0])  # proposals from the smoothed curve, scores from the raw one
    assert candidates(curve, (0.5,), scoring="mean", raw=raw) == [(2, 6, pytest.approx(3.0))]
    with pytest.raises(ValueError):
        segment_score(curve, 0, 2, "median")


def test_nms_keeps_the_best_and_suppresses_overlaps_above_the_threshold():
    s = np.array([0.0, 1.0, 20.0, 0.0])
    e = np.array([10.0, 11.0, 30.0, 10.0])
    sc = np.array([0.9, 0.8, 0.7, 0.9])
    assert tiou(0.0, 10.0, s, e).tolist() == pytest.approx([1.0, 9 / 11, 0.0, 1.0])
    assert nms(s, e, sc, 0.5).tolist() == [0, 2]  # the tie (0 and 3): the earlier one wins
    assert nms(s, e, sc, 0.95).tolist() == [0, 1, 2]  # 9/11 is not above 0.95
    assert nms(s, e, sc, 1.0).tolist() == [0, 3, 1, 2]


def test_localize_turns_frames_into_seconds_per_class():
    scores = np.zeros((20, 2))
    scores[5:10, 0] = 1.0  # class 0 during frames 5..9
    scores[12:16, 1] = 0.5
    params = LocalizeParams(smooth=1, thresholds=(0.5,), nms_iou=0.5)
    segs = localize(scores, rate=10.0, params=params)
    assert segs == [(0.5, 1.0, 0, pytest.approx(1.0)), (1.2, 1.6, 1, pytest.approx(0.5))]  # margins are 0
    capped = localize(scores, 10.0, LocalizeParams(smooth=1, thresholds=(0.5,), max_segments=1))
    assert len(capped) == 1 and capped[0][2] == 0


def test_localize_with_the_default_sliding_average():
    scores = np.zeros((100, 1))
    scores[40:60, 0] = 1.0
    segs = localize(scores, 25.0, LocalizeParams())
    best = segs[0]  # the contrast prefers the run that fits the action over narrow runs inside it or wide ones
    assert best[0] == pytest.approx(40 / 25, abs=0.2) and best[1] == pytest.approx(60 / 25, abs=0.2)
    narrow = localize(scores, 25.0, LocalizeParams(scoring="mean"))[0]  # any run inside the action has mean 1
    assert 1.6 <= narrow[0] < narrow[1] <= 2.4 and narrow[3] == pytest.approx(1.0)
    assert all(a < b for a, b, _, _ in segs) and [s[3] for s in segs] == sorted([s[3] for s in segs], reverse=True)


def test_seen_unseen_split_is_seeded_disjoint_and_halves():
    classes = [f"c{i}" for i in range(20)]
    seen, unseen = seen_unseen(classes, 0)
    assert len(seen) == len(unseen) == 10 and not set(seen) & set(unseen) and sorted(seen + unseen) == sorted(classes)
    assert seen_unseen(list(reversed(classes)), 0) == (seen, unseen)  # the order given does not matter
    assert seen_unseen(classes, 1) != (seen, unseen)
    s5, u5 = seen_unseen(classes[:5], 0)
    assert len(s5) == 2 and len(u5) == 3
    with pytest.raises(ValueError):
        seen_unseen(["only"], 0)
