"""Top-k / mean-class accuracy (mmaction2) and retrieval R@K / MdR / MnR (CLIP4Clip), and their `score` commands."""
import json

import numpy as np
import pytest

from harness.cli import main
from harness.metrics.classification import (average_views, classification_metrics, mean_class_accuracy,
                                            top_k_accuracy, true_class_rank)
from harness.metrics.retrieval import rank_metrics, retrieval_metrics


# -- independent references, written as the reference code computes them --------------------------------------
def _mmaction_topk(scores, labels, k):
    preds = np.argsort(scores, axis=1, kind="stable")[:, -k:][:, ::-1]
    return float(np.logical_or.reduce(preds == labels[:, None], axis=1).mean())


def _mmaction_mean_class(scores, labels):
    pred = np.argmax(scores, axis=1)
    classes = np.unique(np.concatenate([pred, labels]))
    cf = np.zeros((len(classes), len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for t, p in zip(labels, pred):
        cf[index[t], index[p]] += 1
    cnt, hit = cf.sum(axis=1), np.diag(cf)
    return float(np.mean([h / c if c else 0.0 for c, h in zip(cnt, hit)]))


def _clip4clip_compute_metrics(x):
    sx = np.sort(-x, axis=1)
    d = np.diag(-x)[:, None]
    ind = np.where(sx - d == 0)[1]
    return {"R@1": 100 * np.mean(ind == 0), "R@5": 100 * np.mean(ind < 5), "R@10": 100 * np.mean(ind < 10),
            "MdR": np.median(ind) + 1, "MnR": np.mean(ind) + 1}


def test_top_k_and_mean_class_accuracy_match_mmaction2(rng):
    scores = rng.normal(size=(200, 12))
    labels = rng.integers(0, 10, 200)  # classes 10 and 11 never true: predicted ones count 0 in mmaction2's mean
    got = classification_metrics(scores, labels, ks=(1, 3, 5))
    for k in (1, 3, 5):
        assert got[f"top{k}"] == pytest.approx(_mmaction_topk(scores, labels, k))
    assert got["mean_class_accuracy"] == pytest.approx(_mmaction_mean_class(scores, labels))
    present = np.mean([np.mean(np.argmax(scores[labels == c], 1) == c) for c in np.unique(labels)])
    assert got["mean_class_recall_present"] == pytest.approx(present)
    assert got["mean_class_accuracy"] <= got["mean_class_recall_present"]


def test_ties_are_broken_as_a_stable_argsort_and_documented(rng):
    scores = np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1], [0.2, 0.2, 0.2]])
    labels = np.array([1, 0, 0])
    # stable ascending argsort puts the higher index last: class 1 is the top-1 of rows 0 and 1
    assert true_class_rank(scores, labels).tolist() == [0, 1, 2]
    assert top_k_accuracy(scores, labels, (1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}
    for k in (1, 2, 3):
        assert top_k_accuracy(scores, labels, (k,))[k] == pytest.approx(_mmaction_topk(scores, labels, k))
    # mean-class uses argmax: ties go to the lower index (class 0) as in mmaction2
    assert mean_class_accuracy(scores, labels) == pytest.approx(_mmaction_mean_class(scores, labels))


def test_view_averaging_by_score_and_by_probability(rng):
    views = rng.normal(size=(5, 3, 4))
    np.testing.assert_allclose(average_views(views, "score"), views.mean(1))
    p = np.exp(views) / np.exp(views).sum(-1, keepdims=True)
    np.testing.assert_allclose(average_views(views, "prob"), p.mean(1))
    with pytest.raises(ValueError):
        average_views(views, "max")


def test_retrieval_matches_clip4clip_without_ties(rng):
    sim = rng.normal(size=(60, 60)) + 2.0 * np.eye(60)
    got = retrieval_metrics(sim)
    for direction, mat in (("t2v", sim), ("v2t", sim.T)):
        want = _clip4clip_compute_metrics(mat)
        for key, value in want.items():
            assert got[direction][key] == pytest.approx(value)
        assert got[direction]["n"] == 60


def test_ties_do_not_push_the_true_match_down_nor_count_twice():
    sim = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.5, 0.5, 0.5]])
    got = retrieval_metrics(sim)["t2v"]
    # ranks: row 0 -> 0 (tie is not strictly higher), row 1 -> 1, row 2 -> 0
    assert got["R@1"] == pytest.approx(200 / 3) and got["MnR"] == pytest.approx(4 / 3) and got["n"] == 3
    # CLIP4Clip's np.where form emits one entry per tied item: rows 0 and 2 count more than once
    assert len(np.where(np.sort(-sim, 1) - np.diag(-sim)[:, None] == 0)[1]) == 6


def test_multi_caption_retrieval_matches_the_padded_tensor_formulation(rng):
    n_videos, caps = 8, [3, 1, 2, 4, 2, 2, 3, 1]
    cv = np.repeat(np.arange(n_videos), caps)
    sim = rng.normal(size=(len(cv), n_videos)) + 1.5 * (cv[:, None] == np.arange(n_videos)[None])
    got = retrieval_metrics(sim, cv)
    # Deferf's layout: (videos, max captions, videos) padded with -inf, ranks by double argsort
    tensor = np.full((n_videos, max(caps), n_videos), -np.inf)
    for v in range(n_videos):
        tensor[v, :caps[v]] = sim[cv == v]
    stacked = tensor.transpose(1, 0, 2)
    second = np.argsort(np.argsort(-stacked, axis=-1, kind="stable"), axis=-1)
    ranks = np.diagonal(second, axis1=1, axis2=2).reshape(-1)
    valid = np.isfinite(np.diagonal(tensor, axis1=0, axis2=2).reshape(-1))
    r = ranks[valid]
    assert got["t2v"]["n"] == len(cv) == len(r)
    assert got["t2v"]["R@1"] == pytest.approx(100 * np.mean(r < 1))
    assert got["t2v"]["MnR"] == pytest.approx(np.mean(r) + 1)
    assert got["t2v"]["MdR"] == np.sort(r)[(len(r) - 1) // 2] + 1  # torch.median: the lower middle
    v2t = tensor.max(axis=1).T  # tensor_video_to_text_sim
    want = _clip4clip_compute_metrics(v2t)
    for key, value in want.items():
        assert got["v2t"][key] == pytest.approx(value)


def test_rank_metrics_and_bad_matrices():
    assert rank_metrics(np.array([0, 1, 2, 3]))["MdR"] == 2.5
    assert rank_metrics(np.array([0, 1, 2, 3]), median="lower")["MdR"] == 2.0
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="no caption"):
        retrieval_metrics(np.zeros((3, 4)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"entry \(0, 1\)"):
        retrieval_metrics(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_score_classification_and_its_errors(tmp_path, rng, capsys):
    scores = rng.normal(size=(40, 2, 6))
    labels = rng.integers(0, 6, 40)
    np.save(tmp_path / "s.npy", scores), np.save(tmp_path / "l.npy", labels)
    out = tmp_path / "o.json"
    assert main(["score", "classification", "--scores", str(tmp_path / "s.npy"), "--labels",
                 str(tmp_path / "l.npy"), "--average", "prob", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    avg = average_views(scores, "prob")
    assert got["top1"] == pytest.approx(_mmaction_topk(avg, labels, 1)) and got["views"] == 2
    assert got["top5"] == pytest.approx(_mmaction_topk(avg, labels, 5))
    assert "mean_class_accuracy" in capsys.readouterr().out
    items = [{"scores": [0.1, 0.9], "label": 1}, {"scores": [0.8, 0.2], "label": 1}]
    (tmp_path / "p.json").write_text(json.dumps(items))
    assert main(["score", "classification", "--scores", str(tmp_path / "p.json"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["top1"] == 0.5
    bad = labels.astype(float)
    bad[7] = 9
    np.save(tmp_path / "bad.npy", bad)
    assert main(["score", "classification", "--scores", str(tmp_path / "s.npy"), "--labels",
                 str(tmp_path / "bad.npy")]) == 2
    assert "bad.npy: label entry 7 is 9.0" in capsys.readouterr().err
    (tmp_path / "q.json").write_text(json.dumps([{"scores": [0.1, 0.9]}]))
    assert main(["score", "classification", "--scores", str(tmp_path / "q.json")]) == 2
    assert "q.json: entry 0 needs keys" in capsys.readouterr().err


def test_score_retrieval_square_and_multi_caption(tmp_path, rng, capsys):
    sim = rng.normal(size=(20, 20)) + np.eye(20)
    np.save(tmp_path / "sim.npy", sim)
    out = tmp_path / "o.json"
    assert main(["score", "retrieval", "--sim", str(tmp_path / "sim.npy"), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["t2v_R@1"] == pytest.approx(_clip4clip_compute_metrics(sim)["R@1"])
    assert got["v2t_MnR"] == pytest.approx(_clip4clip_compute_metrics(sim.T)["MnR"])
    assert "t2v" in capsys.readouterr().out
    np.save(tmp_path / "rect.npy", rng.normal(size=(6, 3)))
    np.savetxt(tmp_path / "cv.txt", [0, 0, 1, 1, 2, 2])
    assert main(["score", "retrieval", "--sim", str(tmp_path / "rect.npy"), "--caption-video",
                 str(tmp_path / "cv.txt"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["t2v_n"] == 6
    assert main(["score", "retrieval", "--sim", str(tmp_path / "rect.npy")]) == 2
    assert "rect.npy: is 6 x 3" in capsys.readouterr().err
    np.savetxt(tmp_path / "cv2.txt", [0, 0, 1, 1, 2, 5])
    assert main(["score", "retrieval", "--sim", str(tmp_path / "rect.npy"), "--caption-video",
                 str(tmp_path / "cv2.txt")]) == 2
    assert "cv2.txt: entry 5 is 5.0" in capsys.readouterr().err
