"""`davis`: DAVIS 2017 val, semi-supervised video object segmentation by label propagation on frozen features.

The adapter's features at a pyramid level (`level`) stand in for DINO's patch tokens; everything else follows the
reference protocol named by `variant` (tasks/zeroshot/propagation.py): `dino` by default, `crw` as the named
variant. Temporal compression is handled by propagating per feature time step: the first step takes the labels of
frame 0's ground truth, every later step is propagated from its context steps, and every frame takes the labels of
the step that covers it (with a causal 4x tokenizer, frame 0 alone, then groups of 4 frames share one prediction).
Frame 0 is written as the ground truth, as DINO does; frames 0 and N-1 are not scored (davis2017-evaluation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from harness.io import safe_join
from harness.metrics.davis import STAT_KEYS, semi_supervised_scores, statistics
from harness.stats import mean_metric
from harness.task import Metric, Record, Sample, SampleList, Task
from harness.video import resize
from models.base import FEATURES, ModelAdapter
from tasks.davis2017 import VOID, list_davis, load_davis_sequence, num_objects, write_davis_mask
from tasks.zeroshot.features import encode_windows
from tasks.zeroshot.propagation import VARIANTS, PropagationParams, labels_to_pixels, propagate

# What each variant resizes to: (short side, long side floored to a multiple of); 0 keeps the native size (CRW's
# --cropSize -1). DINO: short side 480 and the long side floored to a multiple of 64 (854x480 -> 832x480).
VARIANT_SIZE = {"dino": (480, 64), "crw": (0, 1)}


@dataclass(frozen=True)
class DavisVOSProtocol:
    split: str = "val"
    year: str = "2017"
    resolution: str = "480p"
    level: str | int = "last"  # the adapter's pyramid level whose features are propagated
    variant: str = "dino"  # dino | crw; the fields left at None take the variant's values
    short_side: int | None = None  # frames resized to this short side (0: native size)
    long_multiple: int | None = None  # ...and their long side floored to a multiple of this
    topk: int | None = None
    temperature: float | None = None
    context: int | None = None  # previous feature steps in the context besides step 0
    radius: float | None = None  # spatial window in feature cells
    window: int = 0  # frames per adapter call (0: the whole sequence at once); windows do not overlap
    save_masks: str | None = None  # a folder to write the predicted masks to (<folder>/<sequence>/<frame>.png)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown propagation variant {self.variant!r} (known: {', '.join(VARIANTS)})")
        base = VARIANTS[self.variant]
        short, multiple = VARIANT_SIZE[self.variant]
        defaults = {"short_side": short, "long_multiple": multiple, "topk": base.topk,
                    "temperature": base.temperature, "context": base.context, "radius": base.radius}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.topk < 1 or self.temperature <= 0 or self.context < 0 or self.radius <= 0:
            raise ValueError("topk >= 1, temperature > 0, context >= 0 and radius > 0 are required")

    def params(self) -> PropagationParams:
        base = VARIANTS[self.variant]
        return PropagationParams(self.topk, self.temperature, self.context, self.radius, base.window,
                                 base.window_on_first, base.weights, base.prepend_first)


def target_size(height: int, width: int, short_side: int, multiple: int) -> tuple[int, int]:
    """DINO's `read_frame` size: the short side set to `short_side`, the long side scaled and floored to a multiple
    of `multiple` (0: the native size)."""
    if not short_side:
        return height, width
    if height > width:
        return int((short_side * height / width) // multiple * multiple), short_side
    return short_side, int((short_side * width / height) // multiple * multiple)


def first_step_labels(gt0: np.ndarray, grid: tuple[int, int], num_labels: int, variant: str) -> torch.Tensor:
    """Labels (C, h, w) of step 0 from frame 0's ids (void set to background). DINO: PIL nearest resize of the
    label map to the grid, then one-hot. CRW: one-hot at full resolution, bilinearly resized to the grid."""
    from PIL import Image

    ids = np.where(gt0 == VOID, 0, gt0).astype(np.uint8)
    if variant == "dino":
        small = np.asarray(Image.fromarray(ids).resize((grid[1], grid[0]), Image.NEAREST))
        return F.one_hot(torch.from_numpy(small.astype(np.int64)), num_labels).permute(2, 0, 1).float()
    one_hot = F.one_hot(torch.from_numpy(ids.astype(np.int64)), num_labels).permute(2, 0, 1).float()
    return F.interpolate(one_hot[None], size=grid, mode="bilinear", align_corners=False)[0]


def nearest_resize(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL nearest resize of a uint8 label map (DINO's final resize to the original size)."""
    from PIL import Image

    if labels.shape == (height, width):
        return labels
    return np.asarray(Image.fromarray(labels).resize((width, height), Image.NEAREST))


class DavisVOS(Task):
    """DAVIS 2017 val: semi-supervised VOS by label propagation of frame 0's masks on frozen features (J&F)."""

    name: ClassVar[str] = "davis"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "segmentation"
    dataset: ClassVar[str] = "davis2017"
    requires: ClassVar[frozenset[str]] = frozenset({FEATURES})
    headline: ClassVar[tuple[str, ...]] = ("J&F-Mean", "J-Mean", "F-Mean")
    Protocol: ClassVar[type] = DavisVOSProtocol

    def samples(self, root: Path) -> SampleList:
        p = self.protocol
        return list_davis(root, p.split, p.year, p.resolution, "semi-supervised")

    def load(self, sample: Sample) -> Any:
        return load_davis_sequence(sample.meta["davis_root"], sample.id, self.protocol.resolution)

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        return [self._evaluate_one(model, sample, seq) for sample, seq in batch]

    def predict(self, model: ModelAdapter, frames: np.ndarray, gt0: np.ndarray) -> tuple[np.ndarray, dict]:
        """Predicted ids uint8 (T, H, W) of every frame (frame 0: `gt0` itself) and facts about the run."""
        p = self.protocol
        n, height, width = frames.shape[:3]
        th, tw = target_size(height, width, p.short_side, p.long_multiple)
        x = resize(frames, th, tw, antialias=False)  # cv2.resize INTER_LINEAR, as the references read frames
        feats = encode_windows(model, x, p.level, p.window, p.window)
        grid = tuple(feats.steps.shape[1:3])
        num_labels = int(np.where(gt0 == VOID, 0, gt0).max()) + 1
        soft = propagate(feats.steps, first_step_labels(gt0, grid, num_labels, p.variant), self.protocol.params())
        _, sh, sw = model.feature_stride(p.level)
        step_of = np.zeros(n, np.int64)
        for k, (a, b) in enumerate(zip(feats.first, feats.end)):
            step_of[a:b] = k
        hard = {}
        pred = np.empty((n, height, width), np.uint8)
        for f in range(n):
            k = int(step_of[f])
            if k not in hard:
                lab = labels_to_pixels(soft[k], (th, tw), normalize=p.variant == "dino",
                                       stride=(sh, sw) if p.variant == "dino" else None)
                hard[k] = nearest_resize(lab.numpy().astype(np.uint8), height, width)
            pred[f] = hard[k]
        pred[0] = gt0
        return pred, {"size": [th, tw], "grid": list(grid), "steps": len(feats.first), "labels": num_labels}

    def _evaluate_one(self, model: ModelAdapter, sample: Sample, seq) -> Record:
        pred, facts = self.predict(model, seq.frames, seq.masks[0])
        if self.protocol.save_masks:
            for stem, ids in zip(seq.stems, pred):
                write_davis_mask(safe_join(self.protocol.save_masks, sample.id, f"{stem}.png"), ids)
        k = num_objects(seq.masks[0])
        if len(seq.masks) < 3 or len(seq.masks) != len(seq.frames):
            raise ValueError(f"{sample.id}: semi-supervised scoring needs masks of every frame (at least 3)")
        j, f = semi_supervised_scores(seq.masks[1:-1], pred[1:-1], k)
        values = {"frames": len(seq.frames), "objects": k, **facts,
                  "J": [float(np.mean(r)) for r in j], "F": [float(np.mean(r)) for r in f]}
        return Record(sample.id, values, {"j": j.astype(np.float64), "f": f.astype(np.float64)})

    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        """davis2017-evaluation's statistics per (sequence, object), averaged over objects (harness.metrics.davis)."""
        per_object: dict[str, list[float]] = {k: [] for k in STAT_KEYS}
        clusters = []
        for r in records:
            for jo, fo in zip(r.arrays["j"], r.arrays["f"]):
                js, fs = statistics(jo), statistics(fo)
                for key, v in zip(("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"), (*js, *fs)):
                    per_object[key].append(v)
                per_object["J&F-Mean"].append((js[0] + fs[0]) / 2)
                clusters.append(r.sample_id)
        variant = (f"davis2017-evaluation semi-supervised; label propagation ({self.protocol.variant}) of level "
                   f"{self.protocol.level!r} features; mean over objects, stderr clustered by sequence")
        out = {key: mean_metric(per_object[key], not key.endswith("Decay"), variant, clusters=clusters)
               for key in STAT_KEYS}
        out["objects"] = Metric(float(len(clusters)), len(records), None, variant="(sequence, object) pairs scored")
        return out
