"""The linear probe on separable and soft-labelled toy features; the probe protocols' targets and aggregation."""
import numpy as np
import pytest

from harness.task import Record
from tasks.tal import Thumos14TAL, frame_targets, step_targets
from tasks.video_classification import K400Classification, per_class
from tasks.zeroshot.probe import ProbeParams, fit_probe, softmax


def _blobs(seed=0, n=30):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 5], [5, 0, 0], [0, 5, 0]], float)
    y = np.repeat(np.arange(3), n)
    return centres[y] + rng.normal(0, 0.5, (3 * n, 3)), y


def test_probe_separates_separable_classes_and_is_deterministic():
    x, y = _blobs()
    a = fit_probe(x, y, 3)
    assert a.converged and (a.predict_proba(x).argmax(1) == y).all()
    xt, yt = _blobs(seed=1)
    assert (a.predict_proba(xt).argmax(1) == yt).mean() == 1.0
    b = fit_probe(x, y, 3)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)  # no seed, same answer
    assert np.allclose(a.predict_proba(x).sum(1), 1.0)


def test_probe_standardizes_with_training_statistics_and_keeps_constant_features():
    x, y = _blobs()
    x = np.concatenate([x * 1000.0 + 7.0, np.ones((len(x), 1))], 1)  # scale and a constant column
    p = fit_probe(x, y, 3)
    assert p.scale[-1] == 1.0 and np.allclose(p.mean[:3], x[:, :3].mean(0))
    assert (p.predict_proba(x).argmax(1) == y).all()


def test_soft_targets_are_matched_by_the_bias_when_features_say_nothing():
    x = np.zeros((4, 2))
    targets = np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    p = fit_probe(x, targets, 3, ProbeParams(weight_decay=0.0, max_iter=2000))
    assert p.predict_proba(x[:1])[0] == pytest.approx(targets.mean(0), abs=1e-4)  # the cross-entropy optimum


def test_weight_decay_shrinks_the_weights_and_bad_inputs_are_refused():
    x, y = _blobs()
    small, large = fit_probe(x, y, 3, ProbeParams(1e-4)), fit_probe(x, y, 3, ProbeParams(1.0))
    assert np.abs(large.weight).sum() < np.abs(small.weight).sum()
    with pytest.raises(ValueError):
        fit_probe(x, y + 3, 3)
    with pytest.raises(ValueError):
        fit_probe(np.zeros((0, 3)), np.zeros(0, int), 3)
    assert np.allclose(softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


def test_tal_probe_targets_share_frames_between_overlapping_classes_and_background():
    # 10 frames at 2 fps (frame f centred at (f + 0.5) / 2 s); A on [1, 3) s, B (a sub-class) on [2, 3) s
    t = frame_targets([[1.0, 3.0, "A"], [2.0, 3.0, "B"], [0.0, 5.0, "unknown"]], 10, 2.0, {"A": 0, "B": 1})
    assert t[:2].tolist() == [[0, 0, 1]] * 2  # background (an unknown label counts as background)
    assert t[2:4].tolist() == [[1, 0, 0]] * 2
    assert t[4:6].tolist() == [[0.5, 0.5, 0]] * 2
    assert t[6:].tolist() == [[0, 0, 1]] * 4
    rec = Record("v", {"segments": [[1.0, 3.0, "A"]], "frames": 10, "rate": 2.0},
                 {"first": np.array([0, 1, 5]), "end": np.array([1, 5, 10])})
    # steps cover frames {0}, {1..4} (centres 0.75..2.25 s: 3 of 4 inside A) and {5..9} (only frame 5 inside)
    assert step_targets(rec, {"A": 0}).tolist() == [[0, 1], [0.75, 0.25], [0.2, 0.8]]


def _tal_record(vid, role, steps, segments, frames, first, end):
    return Record(vid, {"role": role, "rate": 1.0, "frames": frames, "classes": ["Jump", "Run"], "class_split": {},
                        "segments": segments, "ambiguous": []},
                  {"steps": np.asarray(steps, np.float32), "first": np.asarray(first), "end": np.asarray(end)})


def test_tal_probe_aggregate_localizes_with_features_that_name_the_action():
    # one feature dimension per class and one for background; each step covers 4 frames at 1 fps
    def video(vid, role, layout):
        steps = [np.eye(3)[k] for k in layout]
        segs, names = [], ["Jump", "Run"]
        for i, k in enumerate(layout):
            if k < 2:
                segs.append([4.0 * i, 4.0 * i + 4, names[k]])
        n = len(layout)
        return _tal_record(vid, role, steps, segs, 4 * n, np.arange(n) * 4, np.arange(n) * 4 + 4)

    records = [video("t1", "train", [2, 0, 2, 1, 2]), video("t2", "train", [1, 2, 0, 2, 2]),
               video("e1", "eval", [2, 2, 0, 2, 1, 2]), video("e2", "eval", [1, 2, 2, 0, 2, 2])]
    task = Thumos14TAL(mode="probe", smooth=1, thresholds=[0.5])
    m = task.aggregate(records)
    assert m["mAP-avg"].value == pytest.approx(1.0) and m["mAP-avg"].n == 2
    assert "linear probe" in m["mAP-avg"].variant


def test_classification_probe_aggregate_and_training_subset():
    x, y = _blobs(n=6)
    train = [Record(f"t{i}", {"role": "train", "label": int(c), "num_classes": 3}, {"feature": f})
             for i, (f, c) in enumerate(zip(x, y))]
    xe, ye = _blobs(seed=5, n=4)
    ev = [Record(f"e{i}", {"role": "eval", "label": int(c), "num_classes": 3}, {"feature": f})
          for i, (f, c) in enumerate(zip(xe, ye))]
    m = K400Classification(mode="probe").aggregate(train + ev)
    assert m["top1"].value == 1.0 and m["top1"].n == 12 and m["mean_class_accuracy"].value == 1.0
    assert "linear probe" in m["top1"].variant and "18 train clips" in m["top1"].variant

    from harness.task import Sample

    samples = [Sample(f"s{i}", meta={"label": i % 2}) for i in range(10)]
    picked = per_class(samples, 2)
    assert len(picked) == 4 and sorted(s.meta["label"] for s in picked) == [0, 0, 1, 1]
    assert [s.id for s in per_class(samples, 2)] == [s.id for s in picked]
