"""Features of whole videos through an adapter: windows, the frame cover of each feature step, grid checks, text
embeddings; and the zero-shot aggregations (classification, retrieval with ties, localization) on hand-made records."""
import numpy as np
import pytest
import torch

from harness.task import Record
from models.baselines.downsample import DownsampleAdapter
from tasks.reconstruction import ModelOutputError
from tasks.retrieval import MSRVTTRetrieval
from tasks.tal import ActivityNetTAL, Thumos14TAL
from tasks.video_classification import SSv2Classification
from tasks.zeroshot.features import (TimedFeatures, check_grid, cosine, encode_windows, fit_frames, prompts,
                                     spatial_mean, window_starts)
from tests.conftest import moving_frames


def test_fit_frames_resizes_the_short_side_then_crops():
    frames = np.zeros((2, 120, 160, 3), np.uint8)
    assert tuple(fit_frames(frames, 128, 16).shape) == (2, 128, 160, 3)  # 170x128 floored to 160 wide
    assert tuple(fit_frames(frames, 128, 16, crop=112).shape) == (2, 112, 112, 3)
    assert tuple(fit_frames(frames, None, 32).shape) == (2, 96, 160, 3)


def test_window_starts_cover_the_video():
    assert window_starts(10, 4, 4) == [0, 4, 8]
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(9, 4, 4) == [0, 4, 8]
    assert window_starts(3, 17, 17) == [0] and window_starts(100, 0, 0) == [0]


def test_causal_feature_steps_cover_their_frames_in_every_window():
    model = DownsampleAdapter()
    assert model.feature_frame_index(9) == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    frames = torch.from_numpy(moving_frames(10, 16, 24))
    tf = encode_windows(model, frames, "last", 5, 5)  # windows [0, 5), [5, 10): steps {0}, {1-4}, {5}, {6-9}
    assert tf.first.tolist() == [0, 1, 5, 6] and tf.end.tolist() == [1, 5, 6, 10]
    assert tuple(tf.steps.shape) == (4, 2, 3, 3)
    whole = model.features(torch.from_numpy(moving_frames(10, 16, 24)).float().div(127.5).sub(1)
                           .permute(3, 0, 1, 2)[None, :, 5:])[0]
    assert torch.allclose(tf.steps[2:], whole, atol=1e-6)  # the second window is encoded on its own
    padded = encode_windows(model, frames, "last", 8, 8)  # [0, 8) and [8, 16) padded: only real frames kept
    assert padded.first.tolist() == [0, 1, 5, 8, 9] and padded.end.tolist() == [1, 5, 8, 9, 10]
    pooled = encode_windows(model, frames, "last", 0, 0, reduce=spatial_mean)
    assert tuple(pooled.steps.shape) == (4, 3) and pooled.end.tolist() == [1, 5, 9, 10]


def test_per_frame_averages_overlapping_windows():
    tf = TimedFeatures(torch.tensor([[1.0], [3.0], [5.0]]), np.array([0, 0, 2]), np.array([2, 4, 4]), 4)
    assert tf.per_frame()[:, 0].tolist() == [2.0, 2.0, 4.0, 4.0]
    assert tf.per_frame(torch.tensor([[0.0], [1.0], [1.0]]))[:, 0].tolist() == [0.5, 0.5, 1.0, 1.0]
    with pytest.raises(ModelOutputError):
        TimedFeatures(torch.ones(1, 1), np.array([0]), np.array([1]), 2).per_frame()


def test_downsample_features_are_its_latent_grid():
    model = DownsampleAdapter()
    video = torch.from_numpy(moving_frames(9, 20, 28)).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
    feat = model.features(video, "first")
    codes = model.encode(video).payload.float().div(127.5).sub(1).permute(0, 2, 3, 4, 1)
    assert feat.shape == codes.shape == (1, 3, 3, 4, 3) and model.feature_stride() == (4, 8, 8)
    assert (feat - codes).abs().max() <= 1 / 127.5 + 1e-6 and (feat != codes).float().mean() < 0.01
    with pytest.raises(ValueError, match="single feature level"):
        model.features(video, 2)


def test_grid_and_values_are_checked():
    model = DownsampleAdapter()
    check_grid(torch.zeros(1, 3, 2, 3, 4), model, "last", 9, 16, 20)  # 20 / 8 -> 2 or 3 cells
    for bad in (torch.zeros(1, 2, 2, 3, 4), torch.zeros(1, 3, 4, 3, 4), torch.zeros(3, 2, 3, 4)):
        with pytest.raises(ModelOutputError):
            check_grid(bad, model, "last", 9, 16, 20)
    with pytest.raises(ModelOutputError, match="NaN"):
        check_grid(torch.full((1, 3, 2, 3, 4), float("nan")), model, "last", 9, 16, 20)
    with pytest.raises(ModelOutputError, match="space of the features"):
        cosine(torch.ones(2, 3), torch.ones(4, 5))
    assert cosine(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])).item() == 0.0


def test_prompts_use_plain_words():
    assert prompts(["SlidesLeft", "earless_seal"], "a video of {}") == ["a video of slides left",
                                                                         "a video of earless seal"]
    with pytest.raises(ValueError):
        prompts(["x"], "no slot")


def test_zero_shot_classification_aggregate():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.0, 0.1, 0.3]])
    records = [Record(str(i), {"role": "eval", "label": int(y), "num_classes": 3}, {"scores": s})
               for i, (s, y) in enumerate(zip(scores, [0, 1, 2, 2]))]
    m = SSv2Classification().aggregate(records)
    assert m["top1"].value == 0.75 and m["top5"].value == 1.0 and m["top1"].n == 4
    assert m["mean_class_accuracy"].value == pytest.approx((1 + 1 + 0.5) / 3)


def test_retrieval_ranks_count_only_strictly_higher_items():
    # videos 0 and 1 are identical: texts 0 and 1 tie on both, and still rank their own video first
    videos = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    texts = np.array([[1.0, 0.0], [1.0, 0.0], [0.8, 0.6]])
    records = [Record(f"video{i}", {}, {"video": v, "text": t}) for i, (v, t) in enumerate(zip(videos, texts))]
    m = MSRVTTRetrieval().aggregate(records)
    # text 2 scores 0.8, 0.8 on videos 0, 1 and 0.6 on its own: rank 2; ranks (0, 0, 2)
    assert m["t2v_R@1"].value == pytest.approx(200 / 3) and m["t2v_R@5"].value == 100.0
    assert m["t2v_MdR"].value == 1.0 and m["t2v_MnR"].value == pytest.approx(5 / 3)
    # video -> text: videos 0 and 1 tie between texts 0 and 1; video 2's own text is its best
    assert m["v2t_R@1"].value == 100.0 and m["v2t_MdR"].value == 1.0
    assert m["t2v_MdR"].higher_is_better is False and m["t2v_R@5"].unit == "%" and m["t2v_R@1"].n == 3


def test_retrieval_ranks_with_a_worse_match():
    videos = np.eye(3)
    texts = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # text 0 describes video 1 best
    records = [Record(f"v{i}", {}, {"video": v, "text": t}) for i, (v, t) in enumerate(zip(videos, texts))]
    m = MSRVTTRetrieval().aggregate(records)
    assert m["t2v_R@1"].value == pytest.approx(200 / 3) and m["t2v_MnR"].value == pytest.approx(1 + 1 / 3)


def _zs_record(vid, scores, segments, classes, split=None):
    return Record(vid, {"role": "eval", "rate": 1.0, "frames": len(scores), "classes": classes,
                        "class_split": split or {}, "segments": segments, "ambiguous": []},
                  {"scores": np.asarray(scores, np.float32)})


def test_zero_shot_tal_aggregate_is_perfect_for_a_curve_that_is_the_ground_truth():
    s = np.zeros((30, 2))
    s[5:10, 0], s[20:26, 1] = 1.0, 1.0
    rec = _zs_record("v1", s, [[5.0, 10.0, "Jump"], [20.0, 26.0, "Run"]], ["Jump", "Run"])
    m = Thumos14TAL(smooth=1, thresholds=[0.5]).aggregate([rec])
    assert m["mAP-avg"].value == pytest.approx(1.0) and set(m) >= {"mAP@0.30", "mAP@0.70", "segments_per_video"}
    shifted = _zs_record("v1", np.roll(s, 3, axis=0), rec.values["segments"], ["Jump", "Run"])
    m2 = Thumos14TAL(smooth=1, thresholds=[0.5]).aggregate([shifted])  # tIoU 2/8 (Jump) and 3/9 (Run)
    assert m2["mAP@0.30"].value == pytest.approx(0.5) and m2["mAP@0.40"].value == 0.0
    assert m2["mAP-avg"].value == pytest.approx(0.1)


def test_open_vocabulary_tal_scores_only_the_unseen_classes():
    classes = ["Jump", "Run", "Swim", "Throw"]
    task = ActivityNetTAL(vocabulary="open50", split_seed=0, smooth=1, thresholds=[0.5])
    from tasks.zeroshot.vocabulary import seen_unseen

    seen, unseen = seen_unseen(classes, 0)
    s = np.zeros((30, 2))
    s[5:10, 0] = 1.0
    segments = [[5.0, 10.0, unseen[0]], [20.0, 25.0, seen[0]]]  # the seen class's segment is not evaluated
    rec = _zs_record("v", s, segments, unseen, {"seen": seen, "unseen": unseen})
    m = task.aggregate([rec])
    assert m["mAP-avg"].value == pytest.approx(1.0) and str(unseen) in m["mAP-avg"].variant
    with pytest.raises(ValueError, match="closed-set"):
        Thumos14TAL(mode="probe", vocabulary="open50")
