"""`thumos14` and `activitynet`: zero-shot temporal action localization from frozen tokens, and a linear probe.

zeroshot (default; needs `embed_text`), as PyraTok B.3: the video is sampled at `fps` (default: its own rate),
resized (short side `short_side`, sides floored to a multiple of `multiple`) and encoded in windows of `window`
frames every `window_stride` frames; the features of `level` (default the first, finest in time) are averaged over
space per feature step and every frame takes the mean of the steps covering it (tasks/zeroshot/features.py). The
per-frame score of a class is the cosine similarity with the embedding of its name in `prompt`. Segments come from
tasks/zeroshot/localize.py (25-frame sliding average, thresholds, runs, contrast scores, NMS) and are scored with the
tIoU mAP of harness/metrics/localization.py. `vocabulary=open50` evaluates only the unseen half of a seeded 50/50 class split
(STALE's open-vocabulary protocol, tasks/zeroshot/vocabulary.py).

probe (for every model with features): a linear classifier over the C classes + background, trained on the
per-step features of the training split (THUMOS14 val, ActivityNet training) with soft targets (the share of each
step's frames inside segments of each class; a frame inside segments of k classes counts 1/k for each, outside all
segments background), applied to the per-frame features of the evaluated split; the class probabilities go through
the same post-processing. Not zero-shot: it is trained, on another split.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.metrics.localization import ACTIVITYNET_TIOU, THUMOS14_TIOU, VARIANTS, LocalizationMAP, threshold_key
from harness.task import Metric, Record, Sample, SampleList, Task, optional_field
from harness.video import probe, read_frames
from models.base import EMBED_TEXT, FEATURES, ModelAdapter
from tasks.zeroshot.features import ClassTexts, TimedFeatures, cosine, encode_windows, fit_frames, spatial_mean
from tasks.zeroshot.localize import LocalizeParams, localize
from tasks.zeroshot.probe import ProbeParams, fit_probe
from tasks.zeroshot.vocabulary import seen_unseen

MODES = ("zeroshot", "probe")
VOCABULARIES = ("all", "open50")
DECODE_CHUNK = 256  # frames decoded and resized at once, so a long video never sits in memory at full size


@dataclass(frozen=True)
class TALProtocol:
    split: str = ""
    train_split: str = ""  # the probe's training split
    mode: str = "zeroshot"  # zeroshot | probe
    vocabulary: str = "all"  # all | open50 (the unseen half of a seeded 50/50 class split)
    split_seed: int = 0
    level: str | int = "first"
    prompt: str = "{}"  # class name -> text, e.g. "a video of {}"
    shuffle_texts: int | None = optional_field()  # a seed: the shuffled-text control (each class scored with
    #                                                another's text; docs/zero-shot-tasks.md)
    fps: float | None = None  # frames sampled per second; None: each video's own rate
    short_side: int = 128
    multiple: int = 16
    window: int = 17  # frames per adapter call
    window_stride: int = 17  # frames between window starts (< window: overlapping windows are averaged)
    smooth: int = 25  # sliding-average length in sampled frames
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    nms_iou: float = 0.5
    min_frames: int = 1
    scoring: str = "contrast"  # a segment's score: contrast (outer-inner) or mean of the per-frame scores
    max_segments: int = 200
    tiou: tuple[float, ...] = THUMOS14_TIOU
    map_variant: str = "anet"  # anet (eval_detection.py) | thumos14-kit (the MATLAB kit, with Ambiguous)
    probe_weight_decay: float = 1e-3
    probe_max_iter: int = 500

    def __post_init__(self):
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        object.__setattr__(self, "tiou", tuple(float(t) for t in self.tiou))
        if self.mode not in MODES:
            raise ValueError(f"unknown TAL mode {self.mode!r} (known: {', '.join(MODES)})")
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"unknown vocabulary {self.vocabulary!r} (known: {', '.join(VOCABULARIES)})")
        if self.mode == "probe" and self.vocabulary != "all":
            raise ValueError("the probe is a closed-set classifier: it cannot name unseen classes (vocabulary=all)")
        if self.map_variant not in VARIANTS:
            raise ValueError(f"unknown mAP variant {self.map_variant!r} (known: {', '.join(VARIANTS)})")

    def localize_params(self) -> LocalizeParams:
        return LocalizeParams(self.smooth, self.thresholds, self.nms_iou, self.max_segments, self.min_frames,
                              self.scoring)


class TALTask(Task):
    """Base of the two TAL tasks; a subclass names its data set's reader and class vocabulary."""

    family: ClassVar[str] = "localization"
    requires: ClassVar[frozenset[str]] = frozenset({FEATURES})
    headline: ClassVar[tuple[str, ...]] = ("mAP-avg",)

    def __init__(self, **overrides: Any):
        super().__init__(**overrides)
        self._text = ClassTexts()

    # -- data set specifics ----------------------------------------------------------------------------------
    def list_split(self, root: Path, split: str) -> SampleList:
        raise NotImplementedError

    def class_names(self, root: Path, split: str) -> list[str]:
        raise NotImplementedError

    # -- protocol --------------------------------------------------------------------------------------------
    def check_model(self, model: ModelAdapter) -> str | None:
        reason = super().check_model(model)
        if reason is None and self.protocol.mode == "zeroshot" and EMBED_TEXT not in model.capabilities:
            return (f"{self.name} mode=zeroshot matches frames with class-name embeddings, and "
                    f"{type(model).__name__} has no text embedding (embed_text); the probe protocol "
                    f"(--task-arg mode=probe) evaluates its features without language")
        return reason

    def vocabulary(self, root: Path) -> tuple[list[str], dict[str, list[str]]]:
        """(evaluated classes, the split's record), the unseen half under vocabulary=open50."""
        p = self.protocol
        classes = self.class_names(root, p.split)
        if p.vocabulary == "all":
            return classes, {}
        seen, unseen = seen_unseen(classes, p.split_seed)
        return unseen, {"seen": seen, "unseen": unseen}

    def samples(self, root: Path) -> SampleList:
        p = self.protocol
        classes, split_record = self.vocabulary(root)
        roles = [("eval", p.split)] + ([("train", p.train_split)] if p.mode == "probe" else [])
        samples, rejected = [], []
        for role, split in roles:
            listing = self.list_split(root, split)
            rejected += listing.rejected
            samples += [dataclasses.replace(s, meta={**s.meta, "role": role, "classes": classes,
                                                     "class_split": split_record}) for s in listing.samples]
        return SampleList(samples, rejected)

    def load(self, sample: Sample) -> dict[str, Any]:
        p = self.protocol
        info = probe(sample.path)
        rate = float(p.fps or info.fps)
        if rate <= 0:
            raise ValueError(f"{sample.path}: the video states no frame rate; set the protocol's fps")
        if p.fps:
            n = max(1, int(info.num_frames * p.fps / info.fps))
            idx = np.minimum(np.round(np.arange(n) * info.fps / p.fps).astype(np.int64), info.num_frames - 1)
        else:
            idx = np.arange(info.num_frames)
        chunks = [fit_frames(read_frames(sample.path, idx[a:a + DECODE_CHUNK], info=info), p.short_side, p.multiple)
                  for a in range(0, len(idx), DECODE_CHUNK)]
        return {"frames": torch.cat(chunks), "rate": rate, "video_fps": info.fps, "video_frames": info.num_frames}

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        p = self.protocol
        records = []
        for sample, inputs in batch:
            feats = encode_windows(model, inputs["frames"], p.level, p.window, p.window_stride, reduce=spatial_mean)
            values = {"role": sample.meta["role"], "rate": inputs["rate"], "frames": len(inputs["frames"]),
                      "video_fps": inputs["video_fps"], "classes": sample.meta["classes"],
                      "class_split": sample.meta["class_split"], "segments": sample.meta.get("segments", []),
                      "ambiguous": sample.meta.get("ambiguous", []), "steps": len(feats.first)}
            if p.mode == "zeroshot":
                text = self._text.get(model, sample.meta["classes"], p.prompt, p.shuffle_texts)
                scores = cosine(feats.per_frame(), text)
                arrays = {"scores": scores.numpy().astype(np.float32)}
            else:
                arrays = {"steps": feats.steps.numpy().astype(np.float32), "first": feats.first, "end": feats.end}
            records.append(Record(sample.id, values, arrays))
        return records

    # -- metrics ---------------------------------------------------------------------------------------------
    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        p = self.protocol
        evaluated = [r for r in records if r.values["role"] == "eval"]
        if not evaluated:
            return {}
        classes = evaluated[0].values["classes"]
        scores = self._probe_scores(records, classes) if p.mode == "probe" else \
            {r.sample_id: r.arrays["scores"] for r in evaluated}
        metric = LocalizationMAP(thresholds=p.tiou, variant=p.map_variant, unknown_labels="ignore")
        known = set(classes)
        n_pred = 0
        for r in evaluated:
            dets = localize(scores[r.sample_id], r.values["rate"], p.localize_params())
            n_pred += len(dets)
            gt = [(s, e, lab) for s, e, lab in r.values["segments"] if lab in known]
            metric.update(r.sample_id, gt, [(s, e, classes[c], sc) for s, e, c, sc in dets],
                          [tuple(a) for a in r.values["ambiguous"]])
        res = metric.compute()
        variant = self._variant(evaluated[0].values["class_split"], res["classes"])
        n = len(evaluated)
        out = {"mAP-avg": Metric(res["mAP-avg"], n, True, variant=variant)}
        for t in p.tiou:
            out[threshold_key(t)] = Metric(res[threshold_key(t)], n, True, variant=variant)
        out["segments_per_video"] = Metric(n_pred / n, n, None, variant="predicted segments per video after NMS")
        return out

    def _variant(self, class_split: dict, n_classes: int) -> str:
        p = self.protocol
        how = (f"zero-shot: cosine of mean-pooled level {p.level!r} tokens with embed_text(prompt {p.prompt!r})"
               if p.mode == "zeroshot" else f"linear probe (C+1) on level {p.level!r} features trained on "
                                            f"{p.train_split}")
        vocab = (f"open-vocabulary 50/50 split seed {p.split_seed}, unseen {class_split['unseen']}"
                 if class_split else "all classes")
        return (f"{how}; {vocab}; {n_classes} classes with ground truth; {p.smooth}-frame sliding mean, thresholds "
                f"{list(p.thresholds)}, {p.scoring} scores, NMS {p.nms_iou}, <= {p.max_segments} per video; mAP "
                f"({p.map_variant}) at tIoU {list(p.tiou)}")

    def _probe_scores(self, records: list[Record], classes: list[str]) -> dict[str, np.ndarray]:
        """Per-frame class probabilities (T, C) of the evaluated videos from a probe fitted on the training ones."""
        p = self.protocol
        index = {c: i for i, c in enumerate(classes)}
        train = [r for r in records if r.values["role"] == "train"]
        if not train:
            raise ValueError("the probe protocol needs records of the training split (none were evaluated)")
        x = np.concatenate([r.arrays["steps"] for r in train])
        y = np.concatenate([step_targets(r, index) for r in train])
        model = fit_probe(x, y, len(classes) + 1, ProbeParams(p.probe_weight_decay, p.probe_max_iter))
        out = {}
        for r in records:
            if r.values["role"] != "eval":
                continue
            timed = TimedFeatures(torch.from_numpy(r.arrays["steps"]), r.arrays["first"], r.arrays["end"],
                                  r.values["frames"])
            out[r.sample_id] = model.predict_proba(timed.per_frame().double().numpy())[:, :len(classes)]
        return out


def frame_targets(segments: list, num_frames: int, rate: float, index: dict[str, int]) -> np.ndarray:
    """(T, C + 1) per-frame target distributions: frame f (centre (f + 0.5) / rate) shares 1 between the classes
    of the segments [start, end) holding it; background (column C) when none does. Classes outside `index` are
    background."""
    c = len(index)
    centre = (np.arange(num_frames) + 0.5) / rate
    hits = np.zeros((num_frames, c))
    for s, e, label in segments:
        if label in index:
            hits[(centre >= s) & (centre < e), index[label]] = 1.0
    out = np.zeros((num_frames, c + 1))
    total = hits.sum(1)
    out[:, :c] = np.divide(hits, total[:, None], out=np.zeros_like(hits), where=total[:, None] > 0)
    out[total == 0, c] = 1.0
    return out


def step_targets(record: Record, index: dict[str, int]) -> np.ndarray:
    """(N, C + 1) targets of a training video's feature steps: the mean of the frame targets each step covers."""
    v = record.values
    per_frame = frame_targets(v["segments"], v["frames"], v["rate"], index)
    return np.stack([per_frame[a:b].mean(0) for a, b in zip(record.arrays["first"], record.arrays["end"])])


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thumos14TALProtocol(TALProtocol):
    split: str = "test"
    train_split: str = "val"
    max_segments: int = 200
    tiou: tuple[float, ...] = THUMOS14_TIOU


class Thumos14TAL(TALTask):
    """THUMOS14 test: zero-shot temporal action localization from first-level tokens (or a probe), tIoU mAP."""

    name: ClassVar[str] = "thumos14"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "thumos14"
    Protocol: ClassVar[type] = Thumos14TALProtocol

    def list_split(self, root: Path, split: str) -> SampleList:
        from tasks.thumos14 import list_thumos

        return list_thumos(root, split, include_ambiguous_only=True)

    def class_names(self, root: Path, split: str) -> list[str]:
        from tasks.thumos14 import load_thumos_annotations

        return load_thumos_annotations(Path(root) / f"annotations_{split}", split).classes


@dataclass(frozen=True)
class ActivityNetTALProtocol(TALProtocol):
    split: str = "validation"
    train_split: str = "training"
    max_segments: int = 100
    tiou: tuple[float, ...] = ACTIVITYNET_TIOU


class ActivityNetTAL(TALTask):
    """ActivityNet v1.3 validation: zero-shot temporal action localization from first-level tokens (or a probe)."""

    name: ClassVar[str] = "activitynet"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "activitynet"
    Protocol: ClassVar[type] = ActivityNetTALProtocol

    def list_split(self, root: Path, split: str) -> SampleList:
        from tasks.activitynet import list_activitynet

        return list_activitynet(root, split)

    def class_names(self, root: Path, split: str) -> list[str]:
        from tasks.activitynet import ANET_JSON, load_activitynet

        return load_activitynet(Path(root) / ANET_JSON).labels()
