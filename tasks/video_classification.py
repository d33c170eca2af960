"""`ssv2`, `k400-cls`, `k600-cls`, `k700-cls`: video classification from frozen tokens.

zeroshot (default; needs `embed_text`): one clip per video (`num_frames` frames, `sampling`/`stride` as in
harness.video.sample_indices; short side `short_side`, centre crop `crop`, or with crop 0 the whole frame with its
sides floored to a multiple of `multiple`), the features of `level` mean-pooled over time and space, and the class
whose prompt embedding has the largest cosine similarity (PyraTok §5.4's likely protocol; the paper describes none).

probe (every model with features): the same pooled features of the training split (at most `train_per_class` clips
per class, the first by a seeded hash of their ids) and of the evaluated split are both records of the run (each
sample carries its role); `aggregate` fits tasks/zeroshot/probe.py's logistic regression on the training records and
scores the evaluated ones. Metrics: top-1/top-5 and mean-class accuracy (harness/metrics/classification.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.hashing import derive_seed
from harness.metrics.classification import mean_class_accuracy, true_class_rank
from harness.stats import mean_metric
from harness.task import Metric, Record, Sample, SampleList, Task, optional_field
from harness.video import probe, read_frames, sample_indices
from models.base import EMBED_TEXT, FEATURES, ModelAdapter
from tasks.zeroshot.features import ClassTexts, clip_features, cosine, fit_frames
from tasks.zeroshot.probe import ProbeParams, fit_probe

MODES = ("zeroshot", "probe")


@dataclass(frozen=True)
class ClassificationProtocol:
    split: str = "val"
    train_split: str = "train"  # the probe's training split
    mode: str = "zeroshot"  # zeroshot | probe
    level: str | int = "last"
    prompt: str = "{}"  # class name -> text, e.g. "a video of {}"
    shuffle_texts: int | None = optional_field()  # a seed: the shuffled-text control (each class scored with
    #                                                another's text; docs/zero-shot-tasks.md)
    num_frames: int = 17
    sampling: str = "center"
    stride: int = 4
    short_side: int = 128
    crop: int = 128  # 0: no crop, the sides floored to a multiple of `multiple`
    multiple: int = 16
    train_per_class: int | None = None  # probe: training clips per class (None: all)
    probe_weight_decay: float = 1e-3
    probe_max_iter: int = 1000

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown classification mode {self.mode!r} (known: {', '.join(MODES)})")


class VideoClassification(Task):
    """Base of the classification tasks; a subclass lists its data set's splits and classes."""

    family: ClassVar[str] = "classification"
    requires: ClassVar[frozenset[str]] = frozenset({FEATURES})
    headline: ClassVar[tuple[str, ...]] = ("top1", "top5", "mean_class_accuracy")
    default_batch_size: ClassVar[int] = 4

    def __init__(self, **overrides: Any):
        super().__init__(**overrides)
        self._text = ClassTexts()

    def list_split(self, root: Path, split: str) -> SampleList:
        raise NotImplementedError

    def class_names(self, root: Path) -> list[str]:
        """Class names in class-index order."""
        raise NotImplementedError

    def check_model(self, model: ModelAdapter) -> str | None:
        reason = super().check_model(model)
        if reason is None and self.protocol.mode == "zeroshot" and EMBED_TEXT not in model.capabilities:
            return (f"{self.name} mode=zeroshot matches videos with class-name embeddings, and "
                    f"{type(model).__name__} has no text embedding (embed_text); the linear probe "
                    f"(--task-arg mode=probe) evaluates its features without language")
        return reason

    def samples(self, root: Path) -> SampleList:
        p = self.protocol
        classes = self.class_names(root)
        roles = [("eval", p.split)] + ([("train", p.train_split)] if p.mode == "probe" else [])
        samples, rejected = [], []
        for role, split in roles:
            listing = self.list_split(root, split)
            rejected += listing.rejected
            chosen = [s for s in listing.samples if s.meta.get("label") is not None]
            if role == "train" and p.train_per_class:
                chosen = per_class(chosen, p.train_per_class)
            samples += [dataclasses.replace(s, meta={**s.meta, "role": role, "classes": classes}) for s in chosen]
        return SampleList(samples, rejected)

    def load(self, sample: Sample) -> dict[str, Any]:
        p = self.protocol
        info = probe(sample.path)
        idx = sample_indices(info.num_frames, p.num_frames, p.sampling, stride=p.stride)
        frames = fit_frames(read_frames(sample.path, idx, info=info), p.short_side, p.multiple, p.crop)
        return {"frames": frames, "indices": idx.tolist()}

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        p = self.protocol
        sizes = {tuple(inputs["frames"].shape) for _, inputs in batch}
        if len(sizes) == 1:
            feats = clip_features(model, torch.stack([inputs["frames"] for _, inputs in batch]), p.level)
        else:  # clips of different sizes (crop 0 and videos of different aspect ratios): one at a time
            feats = [clip_features(model, inputs["frames"], p.level)[0] for _, inputs in batch]
        pooled = torch.stack([f.mean(dim=(0, 1, 2)) for f in feats])
        records = []
        for i, (sample, inputs) in enumerate(batch):
            values = {"role": sample.meta["role"], "label": int(sample.meta["label"]),
                      "num_classes": len(sample.meta["classes"]), "frame_indices": inputs["indices"]}
            if p.mode == "zeroshot":
                text = self._text.get(model, sample.meta["classes"], self.protocol.prompt,
                                      self.protocol.shuffle_texts)
                arrays = {"scores": cosine(pooled[i], text).numpy().astype(np.float64)}
            else:
                arrays = {"feature": pooled[i].numpy().astype(np.float32)}
            records.append(Record(sample.id, values, arrays))
        return records

    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        p = self.protocol
        evaluated = [r for r in records if r.values["role"] == "eval"]
        if not evaluated:
            return {}
        labels = np.array([r.values["label"] for r in evaluated], np.int64)
        if p.mode == "zeroshot":
            scores = np.stack([r.arrays["scores"] for r in evaluated])
            how = f"zero-shot: argmax cosine of pooled level {p.level!r} features with embed_text(prompt {p.prompt!r})"
        else:
            scores, fitted = self._probe_scores(records, evaluated)
            how = (f"linear probe on pooled level {p.level!r} features, trained on {fitted} {p.train_split} clips "
                   f"(weight decay {p.probe_weight_decay})")
        rank = true_class_rank(scores, labels)  # mmaction2's top-k rule (harness/metrics/classification.py)
        out = {f"top{k}": mean_metric((rank < k).astype(float), True, f"{how}; top-{k} of {scores.shape[1]} classes")
               for k in (1, 5)}
        out["mean_class_accuracy"] = Metric(mean_class_accuracy(scores, labels), len(labels), True,
                                            variant=f"{how}; mmaction2 mean_class_accuracy")
        return out

    def _probe_scores(self, records: list[Record], evaluated: list[Record]) -> tuple[np.ndarray, int]:
        p = self.protocol
        train = [r for r in records if r.values["role"] == "train"]
        if not train:
            raise ValueError("the probe protocol needs records of the training split (none were evaluated)")
        num_classes = evaluated[0].values["num_classes"]
        x = np.stack([r.arrays["feature"] for r in train])
        y = np.array([r.values["label"] for r in train], np.int64)
        probe_ = fit_probe(x, y, num_classes, ProbeParams(p.probe_weight_decay, p.probe_max_iter))
        return probe_.predict_proba(np.stack([r.arrays["feature"] for r in evaluated])), len(train)


def per_class(samples: list[Sample], limit: int, seed: int = 0) -> list[Sample]:
    """At most `limit` samples per class: those with the smallest seeded hash of their id (deterministic)."""
    by_class: dict[Any, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.meta.get("label"), []).append(s)
    out = []
    for _, group in sorted(by_class.items(), key=lambda kv: str(kv[0])):
        out += sorted(group, key=lambda s: derive_seed(seed, "probe-train", s.id))[:limit]
    return out


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SSv2Protocol(ClassificationProtocol):
    split: str = "validation"
    sampling: str = "uniform"  # TSN-style: the centre frame of each of num_frames equal segments
    stride: int = 1


class SSv2Classification(VideoClassification):
    """Something-Something v2 validation: zero-shot classification by class-name matching (or a linear probe)."""

    name: ClassVar[str] = "ssv2"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "ssv2"
    Protocol: ClassVar[type] = SSv2Protocol

    def list_split(self, root: Path, split: str) -> SampleList:
        from tasks.ssv2 import list_split

        return list_split(root, split)

    def class_names(self, root: Path) -> list[str]:
        """The templates of labels.json (brackets removed) in class-index order."""
        from harness.errors import MissingDataError
        from tasks.ssv2 import SSv2, find_file, read_labels

        path = find_file(Path(root), "labels")
        if path is None:
            raise MissingDataError(SSv2().missing_message(Path(root), "labels/labels.json"))
        labels = read_labels(path)
        return sorted(labels, key=labels.get)


@dataclass(frozen=True)
class KineticsProtocol(ClassificationProtocol):
    split: str = "val"
    sampling: str = "center"
    stride: int = 4


class KineticsClassification(VideoClassification):
    """Base of the Kinetics tasks: the version's classes are sorted(set(train labels)), as mmaction2's label maps."""

    kinetics_version: ClassVar[int]
    dataset: ClassVar[str]
    Protocol: ClassVar[type] = KineticsProtocol

    def list_split(self, root: Path, split: str) -> SampleList:
        from tasks.kinetics import list_split

        return list_split(Path(root), self.kinetics_version, split)

    def class_names(self, root: Path) -> list[str]:
        from tasks.kinetics import class_names

        return class_names(Path(root), self.kinetics_version)


class K400Classification(KineticsClassification):
    """Kinetics-400 val: zero-shot classification by class-name matching (or a linear probe), top-1/top-5."""

    name: ClassVar[str] = "k400-cls"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "k400"
    kinetics_version: ClassVar[int] = 400


class K600Classification(KineticsClassification):
    """Kinetics-600 val: zero-shot classification by class-name matching (or a linear probe), top-1/top-5."""

    name: ClassVar[str] = "k600-cls"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "k600"
    kinetics_version: ClassVar[int] = 600


class K700Classification(KineticsClassification):
    """Kinetics-700-2020 val: zero-shot classification by class-name matching (or a linear probe), top-1/top-5."""

    name: ClassVar[str] = "k700-cls"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "k700"
    kinetics_version: ClassVar[int] = 700
