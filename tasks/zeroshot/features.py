"""Asking an adapter for the features of whole videos and for text embeddings, and mapping them back to frames.

A tokenizer encodes clips of a fixed length into a grid of feature time steps that is coarser than the frames (a
causal 4x tokenizer turns 17 frames into 5 steps: frame 0 alone, then groups of 4). Untrimmed or long videos are
therefore encoded in windows of `window` frames every `stride` frames (the last window padded by repeating the last
frame; steps that cover only padding are dropped), and every step keeps the range of frames it covers, taken from the
adapter's `feature_frame_index`. A frame covered by several windows gets the mean of their steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.video import center_crop, resize, short_side_size, to_model_input
from models.base import ModelAdapter
from tasks.reconstruction import ModelOutputError


def fit_frames(frames, short_side: int | None, multiple: int = 1, crop: int | None = None,
               antialias: bool = True) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames resized so the short side is `short_side` (None: kept), then centre-cropped to a
    `crop` x `crop` square, or else each side floored to a multiple of `multiple` by a centre crop."""
    x = torch.as_tensor(frames)
    if short_side:
        x = resize(x, *short_side_size(x.shape[1], x.shape[2], short_side), antialias=antialias)
    if crop:
        return center_crop(x, crop)
    h, w = x.shape[1] // multiple * multiple, x.shape[2] // multiple * multiple
    if h == 0 or w == 0:
        raise ValueError(f"frames of {x.shape[1]}x{x.shape[2]} are smaller than the grid multiple {multiple}")
    return center_crop(x, h, w) if (h, w) != tuple(x.shape[1:3]) else x


def check_grid(feat: torch.Tensor, model: ModelAdapter, level, num_frames: int, height: int, width: int) -> None:
    """Raise ModelOutputError unless `feat` (B, t, h, w, d) has the grid `feature_stride`/`feature_frame_index`
    promise for a clip of this size (each spatial side the floor or the ceiling of size / stride) and is finite."""
    if feat.ndim != 5:
        raise ModelOutputError(f"features must be (B, t, h, w, d), got shape {tuple(feat.shape)}")
    _, sh, sw = model.feature_stride(level)
    steps = max(model.feature_frame_index(num_frames, level)) + 1
    ok_h = feat.shape[2] in (height // sh, -(-height // sh))
    ok_w = feat.shape[3] in (width // sw, -(-width // sw))
    if feat.shape[1] != steps or not ok_h or not ok_w:
        raise ModelOutputError(f"features at level {level!r} of a {num_frames}x{height}x{width} clip have grid "
                               f"{tuple(feat.shape[1:4])}; feature_stride {model.feature_stride(level)} and "
                               f"feature_frame_index promise ({steps}, ~{height / sh:g}, ~{width / sw:g})")
    if not torch.isfinite(feat).all():
        raise ModelOutputError(f"features at level {level!r} contain NaN or infinite values")


def clip_features(model: ModelAdapter, frames: torch.Tensor, level) -> torch.Tensor:
    """Features (B, t, h, w, d) of uint8 clips (B, T, H, W, 3) (or one clip (T, H, W, 3) as B = 1), float32 on CPU."""
    frames = torch.as_tensor(frames)
    if frames.ndim == 4:
        frames = frames[None]
    video = to_model_input(frames).to(model.device)
    feat = model.features(video, level)
    check_grid(feat, model, level, *frames.shape[1:4])
    return feat.detach().float().cpu()


@dataclass
class TimedFeatures:
    """Feature time steps of a whole video, in window order, with the frames each one covers."""

    steps: torch.Tensor  # (N, ...) one row per feature time step
    first: np.ndarray  # (N,) first covered frame
    end: np.ndarray  # (N,) one past the last covered frame
    num_frames: int

    def frame_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame, step) pairs of the cover: every frame each step covers."""
        lengths = self.end - self.first
        step = np.repeat(np.arange(len(self.first)), lengths)
        frame = np.concatenate([np.arange(a, b) for a, b in zip(self.first, self.end)]) if len(step) else step
        return frame, step

    def per_frame(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """(num_frames, ...) the mean over the steps covering each frame of `values` (default: the step features)."""
        v = self.steps if values is None else values
        frame, step = self.frame_steps()
        out = torch.zeros((self.num_frames, *v.shape[1:]), dtype=v.dtype)
        out.index_add_(0, torch.from_numpy(frame), v[torch.from_numpy(step)])
        count = np.bincount(frame, minlength=self.num_frames)
        if (count == 0).any():
            raise ModelOutputError(f"frame {int(np.argmin(count))} is covered by no feature time step")
        return out / torch.from_numpy(count).to(v.dtype).view(-1, *[1] * (v.ndim - 1))


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of windows of `window` frames every `stride` frames until the last frame is covered; one window
    for the whole video when `window` <= 0."""
    if window <= 0 or num_frames <= window:
        return [0]
    if stride <= 0:
        raise ValueError(f"window stride must be positive, got {stride}")
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(starts[-1] + stride)
    return starts


def encode_windows(model: ModelAdapter, frames: torch.Tensor, level, window: int, stride: int,
                   reduce=None) -> TimedFeatures:
    """Encode uint8 frames (T, H, W, 3) window by window (`window` <= 0: all at once; a shorter video, or the tail,
    is padded to a full window by repeating its last frame). `reduce` maps each window's (t, h, w, d) features to
    what is kept per step (e.g. a spatial mean), so long videos never hold a full-resolution grid of every step."""
    frames = torch.as_tensor(frames)
    n = frames.shape[0]
    steps, first, end = [], [], []
    for a in window_starts(n, window, stride):
        length = n if window <= 0 else window
        idx = np.minimum(np.arange(a, a + length), n - 1)
        feat = clip_features(model, frames[torch.from_numpy(idx)], level)[0]
        step_of = np.asarray(model.feature_frame_index(length, level))
        real = a + np.arange(length) < n
        kept = reduce(feat) if reduce is not None else feat
        for k in range(feat.shape[0]):
            covered = np.flatnonzero((step_of == k) & real)
            if covered.size == 0:
                continue
            if np.any(np.diff(covered) != 1):
                raise ModelOutputError(f"feature step {k} covers frames {covered.tolist()}, not one contiguous run")
            steps.append(kept[k])
            first.append(a + int(covered[0]))
            end.append(a + int(covered[-1]) + 1)
    return TimedFeatures(torch.stack(steps), np.asarray(first, np.int64), np.asarray(end, np.int64), n)


def spatial_mean(feat: torch.Tensor) -> torch.Tensor:
    """(t, h, w, d) -> (t, d)."""
    return feat.mean(dim=(1, 2))


def embed_texts(model: ModelAdapter, texts: list[str]) -> torch.Tensor:
    """L2-normalized text embeddings (N, d) on CPU, checked."""
    emb = model.embed_text(list(texts))
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ModelOutputError(f"embed_text of {len(texts)} texts returned shape {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ModelOutputError("text embeddings contain NaN or infinite values")
    return F.normalize(emb.detach().float().cpu(), dim=-1)


def cosine(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (..., N) of features (..., d) with L2-normalized text embeddings (N, d); a zero feature
    vector scores 0 against every text."""
    if features.shape[-1] != text.shape[-1]:
        raise ModelOutputError(f"features have {features.shape[-1]} channels but text embeddings {text.shape[-1]}: "
                               "embed_text must answer in the space of the features of the aligned level")
    return F.normalize(features.float(), dim=-1) @ text.T


def prompts(names: list[str], template: str) -> list[str]:
    """Class names as plain words (tasks.mini.vocab.class_text) in the protocol's prompt template."""
    from tasks.mini.vocab import class_text

    if "{}" not in template:
        raise ValueError(f"prompt template {template!r} has no '{{}}' for the class name")
    return [template.replace("{}", class_text(n)) for n in names]


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(n) that moves every index (n >= 2): the shuffled-text control scores each class
    with another class's text, so what it measures is the chance level given the model's own features."""
    if n < 2:
        raise ValueError(f"a shuffled-text control needs at least 2 classes, got {n}")
    rng = np.random.default_rng([seed, n])
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


class ClassTexts:
    """The embedded class prompts of a task, computed once per (model, class list, template): every video of a
    split asks for the same ones. `shuffle` (a seed) returns them deranged: the shuffled-text control."""

    def __init__(self):
        self._cache: dict[tuple, torch.Tensor] = {}

    def get(self, model: ModelAdapter, classes: list[str], template: str, shuffle: int | None = None) -> torch.Tensor:
        key = (id(model), tuple(classes), template)
        if key not in self._cache:
            self._cache[key] = embed_texts(model, prompts(classes, template))
        text = self._cache[key]
        return text if shuffle is None else text[torch.from_numpy(derangement(len(text), shuffle))]
