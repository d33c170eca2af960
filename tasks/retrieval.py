"""`msrvtt-retrieval`: zero-shot text-to-video and video-to-text retrieval on MSR-VTT 1k-A (MSRVTT_JSFUSION_test.csv).

Each video gives one clip (`num_frames` frames sampled uniformly over the video, short side `short_side`, centre
crop `crop`); its features at `level` are mean-pooled over time and space. Each video's query sentence (the CSV's
`sentence`, used as written) is embedded with `embed_text`. The similarity of text i and video j is their cosine;
ranks count the items scoring strictly higher than the true one (ties do not push it down), R@K in percent,
MdR and MnR 1-based (harness/metrics/retrieval.py, CLIP4Clip's definitions without its tie bug).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from harness.metrics.retrieval import retrieval_metrics
from harness.task import Metric, Record, Sample, SampleList, Task
from harness.video import probe, read_frames, sample_indices
from models.base import EMBED_TEXT, FEATURES, ModelAdapter
from tasks.reconstruction import ModelOutputError
from tasks.zeroshot.features import clip_features, embed_texts, fit_frames

DIRECTIONS = {"t2v": "text -> video", "v2t": "video -> text"}
LOWER_IS_BETTER = ("MdR", "MnR")


@dataclass(frozen=True)
class RetrievalProtocol:
    split: str = "1k-A"
    level: str | int = "last"
    num_frames: int = 17
    sampling: str = "uniform"
    short_side: int = 128
    crop: int = 128  # 0: no crop, the sides floored to a multiple of `multiple`
    multiple: int = 16


class MSRVTTRetrieval(Task):
    """MSR-VTT 1k-A: zero-shot text<->video retrieval with pooled tokens and embed_text (R@1/5/10, MdR, MnR)."""

    name: ClassVar[str] = "msrvtt-retrieval"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "retrieval"
    dataset: ClassVar[str] = "msrvtt"
    requires: ClassVar[frozenset[str]] = frozenset({FEATURES, EMBED_TEXT})
    default_batch_size: ClassVar[int] = 4
    headline: ClassVar[tuple[str, ...]] = ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR", "v2t_R@1", "v2t_R@5")
    Protocol: ClassVar[type] = RetrievalProtocol

    def samples(self, root: Path) -> SampleList:
        from tasks.msrvtt import list_split

        if self.protocol.split != "1k-A":
            raise ValueError(f"msrvtt-retrieval scores one query sentence per video (split 1k-A), not "
                             f"{self.protocol.split!r}")
        return list_split(Path(root), self.protocol.split)

    def load(self, sample: Sample) -> dict[str, Any]:
        p = self.protocol
        info = probe(sample.path)
        idx = sample_indices(info.num_frames, p.num_frames, p.sampling)
        return {"frames": fit_frames(read_frames(sample.path, idx, info=info), p.short_side, p.multiple, p.crop),
                "indices": idx.tolist()}

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        p = self.protocol
        if len({tuple(inputs["frames"].shape) for _, inputs in batch}) == 1:
            feats = clip_features(model, torch.stack([inputs["frames"] for _, inputs in batch]), p.level)
        else:
            feats = [clip_features(model, inputs["frames"], p.level)[0] for _, inputs in batch]
        video = F.normalize(torch.stack([f.mean(dim=(0, 1, 2)) for f in feats]), dim=-1)
        text = embed_texts(model, [s.meta["query"] for s, _ in batch])
        if video.shape[-1] != text.shape[-1]:
            raise ModelOutputError(f"features have {video.shape[-1]} channels but text embeddings {text.shape[-1]}: "
                                   "embed_text must answer in the space of the features of the aligned level")
        return [Record(s.id, {"query": s.meta["query"], "frame_indices": inputs["indices"]},
                       {"video": video[i].numpy().astype(np.float64), "text": text[i].numpy().astype(np.float64)})
                for i, (s, inputs) in enumerate(batch)]

    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        videos = np.stack([r.arrays["video"] for r in records])
        texts = np.stack([r.arrays["text"] for r in records])
        res = retrieval_metrics(texts @ videos.T)
        n = len(records)
        out = {}
        for direction, what in DIRECTIONS.items():
            for key, value in res[direction].items():
                if key == "n":
                    continue
                lower = key in LOWER_IS_BETTER
                out[f"{direction}_{key}"] = Metric(
                    value, n, not lower, unit=None if lower else "%",
                    variant=f"{what} among {n} items; cosine of pooled level {self.protocol.level!r} features and "
                            "embed_text; rank = items scoring strictly higher")
        return out
