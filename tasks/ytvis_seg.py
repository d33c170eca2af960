"""`ytvis21`: text-driven zero-shot video instance segmentation on YouTube-VIS 2021 valid, as PyraTok B.1.

Per video (its annotated frames, every 5th of the original, are what the data set provides):
  1. the frames are resized to `short_side` (each side rounded to a multiple of `multiple`, so the masks map back by
     resizing) and encoded (`window` frames per call, 0: all); the features of `level` (default the last) give each
     frame the cells of the feature step that covers it;
  2. every category name, in `prompt`, is embedded with `embed_text`; its cosine similarity with every cell is the
     relevance map (the paper's "semantic units" are the category names here). The `max_categories` categories with
     the highest similarity anywhere in the video are kept;
  3. the maps are min-max normalized jointly over the video and the kept categories and bilinearly upsampled to the
     CRF's working grid (the resized frames divided by `crf_scale`); the background's logit is Otsu's threshold of
     the per-voxel maximum over categories; unary = -log softmax(logits / `temperature`) over background + kept
     categories;
  4. the dense spatio-temporal CRF of tasks/zeroshot/crf.py (appearance + smoothness kernels over (x, y, t), mean
     field) refines them; each voxel takes its most probable label;
  5. instances: per category, every 3-D connected component (26-connectivity over (t, y, x)) of its voxels with at
     least `min_voxels` voxels is one instance track, scored by the mean CRF marginal of the category over it; at
     most `max_instances` per video, best first; masks go back to the original size by nearest-neighbour resizing;
  6. scoring: YouTube-VIS AP (cocoapi ytvoseval semantics) and the mean Jaccard of harness/metrics/vis.py against
     the annotated JSON (`annotations`; the public valid file has none).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import DataError
from harness.metrics.vis import Track, VideoInstanceAP
from harness.task import Metric, Record, Sample, SampleList, Task, optional_field
from harness.video import read_image_sequence, resize
from models.base import EMBED_TEXT, FEATURES, ModelAdapter
from tasks.zeroshot.crf import CRFParams, mean_field
from tasks.zeroshot.features import cosine, derangement, embed_texts, encode_windows, prompts

KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "mean_jaccard")


@dataclass(frozen=True)
class YTVISSegProtocol:
    split: str = "valid"
    annotations: str | None = None  # annotated JSON of the split (None: the mini split's, else <split>/instances.json)
    level: str | int = "last"
    prompt: str = "{}"
    shuffle_texts: int | None = optional_field()  # a seed: the shuffled-text control (each category scored with
    #                                                another's text; docs/zero-shot-tasks.md)
    short_side: int = 360
    multiple: int = 16
    window: int = 0
    max_categories: int = 5
    temperature: float = 0.1
    crf_scale: int = 4
    crf_iterations: int = 5
    w_app: float = 10.0
    theta_alpha: float = 80.0  # pixels of the resized frames
    theta_alpha_t: float = 2.0  # frames
    theta_beta: float = 13.0
    w_smooth: float = 3.0
    theta_gamma: float = 3.0
    theta_gamma_t: float = 1.0
    crf_centres: int = 16
    min_voxels: int = 8
    max_instances: int = 100

    def crf_params(self) -> CRFParams:
        s = self.crf_scale
        return CRFParams(self.crf_iterations, self.w_app, self.theta_alpha / s, self.theta_alpha_t, self.theta_beta,
                         self.w_smooth, self.theta_gamma / s, self.theta_gamma_t, self.crf_centres)


def rounded_size(height: int, width: int, short_side: int, multiple: int) -> tuple[int, int]:
    """The short side at `short_side`, the long one scaled; each then rounded to the nearest multiple (halves up,
    at least one multiple)."""
    k = short_side / min(height, width)
    return tuple(max(multiple, int(v * k / multiple + 0.5) * multiple) for v in (height, width))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (the bin edge maximizing the between-class variance)."""
    hist, edges = np.histogram(np.clip(values, 0, 1), bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(1, hist.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    w1 = 1 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def components(labels: np.ndarray, label: int, min_voxels: int) -> list[np.ndarray]:
    """bool masks (T, H, W) of the 26-connected components of `labels == label` with >= min_voxels voxels."""
    from scipy.ndimage import label as cc

    ids, n = cc(labels == label, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(ids.reshape(-1), minlength=n + 1)
    return [ids == k for k in range(1, n + 1) if sizes[k] >= min_voxels]


def encode_track(mask: np.ndarray) -> list[str | None]:
    """Compressed RLE counts (str) per frame of a bool (T, H, W) mask, None where empty."""
    from pycocotools import mask as mask_utils

    out = []
    for m in mask:
        if not m.any():
            out.append(None)
            continue
        out.append(mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode("ascii"))
    return out


class YTVISTextSegmentation(Task):
    """YouTube-VIS 2021 valid: zero-shot instance segmentation from category-name / token similarity + dense CRF."""

    name: ClassVar[str] = "ytvis21"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "segmentation"
    dataset: ClassVar[str] = "ytvis2021"
    requires: ClassVar[frozenset[str]] = frozenset({FEATURES, EMBED_TEXT})
    headline: ClassVar[tuple[str, ...]] = ("AP", "AP50", "AP75", "mean_jaccard")
    Protocol: ClassVar[type] = YTVISSegProtocol

    def __init__(self, **overrides: Any):
        super().__init__(**overrides)
        self._text: dict[tuple[int, tuple[str, ...]], torch.Tensor] = {}

    def annotation_file(self, root: Path) -> Path:
        from tasks.ytvis2021 import MINI_ANNOTATED_VALID

        if self.protocol.annotations:
            return Path(self.protocol.annotations)
        mini = Path(root) / MINI_ANNOTATED_VALID
        return mini if self.protocol.split == "valid" and mini.exists() else Path(root) / self.protocol.split / \
            "instances.json"

    def samples(self, root: Path) -> SampleList:
        from tasks.ytvis2021 import list_ytvis, load_ytvis

        json_path = self.annotation_file(root)
        listing = list_ytvis(root, self.protocol.split, annotations=json_path)
        categories = sorted(load_ytvis(json_path).categories.items())
        return SampleList([dataclasses.replace(s, meta={**s.meta, "categories": categories}) for s in listing.samples],
                          listing.rejected)

    def load(self, sample: Sample) -> dict[str, Any]:
        m = sample.meta
        frames = read_image_sequence([Path(m["frame_root"]) / n for n in m["file_names"]])
        if frames.shape[1:3] != (m["height"], m["width"]):
            raise DataError(str(Path(m["frame_root"]) / m["file_names"][0]), f"frames are {frames.shape[2]}x"
                            f"{frames.shape[1]}, {m['json']} says {m['width']}x{m['height']}")
        return {"frames": frames}

    def _embed(self, model: ModelAdapter, names: list[str]) -> torch.Tensor:
        key = (id(model), tuple(names))
        if key not in self._text:
            self._text[key] = embed_texts(model, prompts(names, self.protocol.prompt))
        text, seed = self._text[key], self.protocol.shuffle_texts
        return text if seed is None else text[torch.from_numpy(derangement(len(text), seed))]

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        return [self._evaluate_one(model, sample, inputs["frames"]) for sample, inputs in batch]

    def relevance(self, model: ModelAdapter, frames: torch.Tensor, names: list[str]) -> torch.Tensor:
        """Cosine similarity (K, T, h, w) of every category prompt with every feature cell of every frame."""
        p = self.protocol
        feats = encode_windows(model, frames, p.level, p.window, p.window)
        sims = cosine(feats.steps, self._embed(model, names))  # (N, h, w, K)
        return feats.per_frame(sims).permute(3, 0, 1, 2)

    def _evaluate_one(self, model: ModelAdapter, sample: Sample, frames_np: np.ndarray) -> Record:
        p = self.protocol
        height, width = frames_np.shape[1:3]
        rh, rw = rounded_size(height, width, p.short_side, p.multiple)
        frames = resize(frames_np, rh, rw)
        cat_ids = [c for c, _ in sample.meta["categories"]]
        sims = self.relevance(model, frames, [n for _, n in sample.meta["categories"]])
        _, sh, sw = model.feature_stride(p.level)
        tracks, facts = self.segment(sims, frames, (sh, sw), cat_ids)
        out = []
        for cat, score, mask in tracks:
            big = F.interpolate(torch.from_numpy(mask).float()[:, None], size=(height, width), mode="nearest")
            segs = encode_track(big[:, 0].numpy() > 0.5)
            if any(s is not None for s in segs):
                out.append({"category_id": cat, "score": score, "segmentations": segs})
        values = {"video_id": sample.meta["video_id"], "json": sample.meta["json"], "size": [height, width],
                  "tracks": out, **facts}
        return Record(sample.id, values)

    def segment(self, sims: torch.Tensor, frames: torch.Tensor, stride: tuple[int, int],
                cat_ids: list[int]) -> tuple[list[tuple[int, float, np.ndarray]], dict]:
        """(category id, score, bool mask on the working grid (T, Hw, Ww)) tracks from relevance maps (K, T, h, w)
        of frames (T, H, W, 3) resized for the model."""
        p = self.protocol
        t, rh, rw = frames.shape[:3]
        hw_, ww_ = max(1, rh // p.crf_scale), max(1, rw // p.crf_scale)
        peak = sims.reshape(len(cat_ids), -1).max(1).values
        keep = [int(i) for i in torch.argsort(-peak, stable=True)[:p.max_categories]]
        s = sims[keep]
        lo, hi = float(s.min()), float(s.max())
        if not hi > lo:
            return [], {"categories_kept": [cat_ids[i] for i in keep], "background_logit": None}
        s = (s - lo) / (hi - lo)
        grid = (s.shape[2] * stride[0], s.shape[3] * stride[1])  # the cells' pixel extent, cropped to the frame
        up = F.interpolate(s.reshape(-1, 1, *s.shape[2:]), size=grid, mode="bilinear", align_corners=False)
        up = F.interpolate(up[..., :rh, :rw], size=(hw_, ww_), mode="bilinear", align_corners=False)
        up = up.reshape(len(keep), t, hw_, ww_)
        tau = otsu_threshold(up.max(0).values.numpy())
        logits = torch.cat([torch.full((1, t, hw_, ww_), tau), up]) / p.temperature
        image = F.adaptive_avg_pool2d(frames.permute(0, 3, 1, 2).float(), (hw_, ww_)).permute(0, 2, 3, 1)
        q = mean_field(-F.log_softmax(logits, dim=0), image, p.crf_params())
        labels = q.argmax(0).numpy()
        tracks = []
        for j, k in enumerate(keep, start=1):
            for mask in components(labels, j, p.min_voxels):
                tracks.append((cat_ids[k], float(q[j].numpy()[mask].mean()), mask))
        tracks.sort(key=lambda x: -x[1])
        return tracks[:p.max_instances], {"categories_kept": [cat_ids[i] for i in keep], "background_logit": tau}

    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        from harness.metrics.ytvis_files import read_ytvis_annotations

        jsons = {r.values["json"] for r in records}
        if len(jsons) != 1:
            raise ValueError(f"records come from several annotation files: {sorted(jsons)}")
        _, cats, gts = read_ytvis_annotations(jsons.pop())
        metric = VideoInstanceAP(categories=cats)
        for r in records:
            vid, size = r.values["video_id"], r.values["size"]
            preds = [Track(vid, t["category_id"], [None if c is None else {"size": size, "counts": c.encode("ascii")}
                                                  for c in t["segmentations"]], score=t["score"])
                     for t in r.values["tracks"]]
            metric.update(vid, [g for g in gts if g.video == vid], preds)
        res = metric.compute()
        p = self.protocol
        variant = (f"{res['variant']} AP / mean Jaccard; zero-shot: cosine of level {p.level!r} tokens with "
                   f"embed_text(prompt {p.prompt!r}) + dense CRF ({p.crf_iterations} mean-field iterations at "
                   f"1/{p.crf_scale} of {p.short_side}p); {res['true_tracks']} true tracks")
        out = {}
        for key in KEYS:
            value = res[key]
            if value is None or value < 0:
                out[key] = Metric(None, len(records), True, variant=variant, reason="nothing to measure")
            else:
                out[key] = Metric(float(value), len(records), True, variant=variant)
        return out
