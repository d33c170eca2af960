"""Training clips: named sources mixed per batch, so more data sets can be added later (one class each, registered
in SOURCES as a lazy "module:Object" string).

* `ucf101`: UCF-101 `trainlist01` (the split of the mini split when no --data-root is given), random windows of
  consecutive frames; no captions (the clips train the text-free path through the learned null token).
* `scenes`: procedural scenes from tasks/mini/scenes.py rendered on the fly, with the caption of the same description.
  Their render seeds are >= 2^31, while every mini split draws its render seeds from [0, 2^31 - 1)
  (`random_scene` uses rng.integers(0, 2**31 - 1)), so training never renders a scene of an evaluation split; the
  scene layouts come from a generator seeded by (SCENE_STREAM, seed), a stream no mini writer uses.

Every clip is resized so its short side is `resize` (the evaluation protocol's scale) and randomly cropped.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.video import resize_short_side

SCENE_SEED_BASE = 2 ** 31  # training render seeds start here; mini splits use [0, 2^31 - 1)
SCENE_STREAM = 0x5059_5241_544F  # "PYRATO": the generator stream of training scene layouts

SOURCES = {
    "ucf101": "models.tokenizer.data:UCF101Source",
    "scenes": "models.tokenizer.data:SceneSource",
}


@dataclass
class Clip:
    frames: torch.Tensor  # uint8 (T, H, W, 3)
    caption: str | None = None
    source: str = ""


class ClipSource(ABC):
    name: str = ""
    captioned: bool = False

    def get_state(self) -> dict:
        """JSON state a resumed training run restores (sources with their own generators override this)."""
        return {}

    def set_state(self, state: dict) -> None:
        pass

    @abstractmethod
    def sample(self, rng: np.random.Generator, frames: int, crop: int, resize: int) -> Clip:
        """One random training clip of `frames` frames, `crop` x `crop` pixels."""


def random_crop(x: torch.Tensor, crop: int, rng: np.random.Generator) -> torch.Tensor:
    h, w = x.shape[1:3]
    if h < crop or w < crop:
        raise ValueError(f"cannot crop {crop}x{crop} from {h}x{w}")
    top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return x[:, top:top + crop, left:left + crop]


class UCF101Source(ClipSource):
    name = "ucf101"

    def __init__(self, data_root: str | None = None, split: str = "trainlist01", cache_root: str | None = None,
                 max_cached: int = 512):
        from harness.dataset import ensure_mini
        from tasks.ucf101 import list_split

        self.root = Path(data_root) if data_root else ensure_mini("ucf101", cache_root=cache_root)
        listing = list_split(self.root, split)
        if not listing.samples:
            raise ValueError(f"no {split} videos under {self.root}")
        self.samples = listing.samples
        self.max_cached = max_cached
        self._frames: dict[str, torch.Tensor] = {}
        self._resize: int | None = None

    def _video(self, path: str, resize: int) -> torch.Tensor:
        """The whole video resized (small clips, as UCF-101's, are decoded once and kept)."""
        from harness.video import read_frames

        if self._resize != resize:
            self._frames.clear()
            self._resize = resize
        if path not in self._frames:
            if len(self._frames) >= self.max_cached:
                self._frames.pop(next(iter(self._frames)))
            self._frames[path] = resize_short_side(read_frames(path), resize)
        return self._frames[path]

    def sample(self, rng, frames, crop, resize) -> Clip:
        s = self.samples[int(rng.integers(len(self.samples)))]
        video = self._video(s.path, resize)
        n = video.shape[0]
        if n >= frames:
            start = int(rng.integers(0, n - frames + 1))
            idx = np.arange(start, start + frames)
        else:  # shorter than the window: repeat the last frame
            idx = np.minimum(np.arange(frames), n - 1)
        return Clip(random_crop(video[idx], crop, rng), None, self.name)


class SceneSource(ClipSource):
    name = "scenes"
    captioned = True

    def __init__(self, seed: int = 0, height: int = 240, width: int = 320, time_stride: int = 1, **_):
        self.rng = np.random.default_rng([SCENE_STREAM, int(seed)])
        self.height, self.width = height, width
        self.time_stride = int(time_stride)  # clips take every s-th frame, s in 1..time_stride
        self.count = 0

    def get_state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "count": self.count}

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.count = int(state["count"])

    def sample(self, rng, frames, crop, resize) -> Clip:
        from tasks.mini.scenes import random_scene, render

        span = int(rng.integers(frames, max(frames, 24) + 1))  # the motion takes `span` frames; we see `frames`
        scene = random_scene(self.rng, num_frames=span, height=self.height, width=self.width)
        scene = dataclasses.replace(scene, seed=SCENE_SEED_BASE + self.count)
        self.count += 1
        video, _ = render(scene)
        step = int(rng.integers(1, self.time_stride + 1)) if self.time_stride > 1 else 1
        clip = resize_short_side(video[strided_window(span, frames, step, rng=rng)], resize)
        return Clip(random_crop(clip, crop, rng), caption_variant(scene, rng), self.name)


def strided_window(span: int, frames: int, step: int, start: int | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of `frames` frames `step` apart in a video of `span` frames, from `start` (drawn so the window starts
    inside the video and, where it fits, ends inside it); past the end the last frame repeats, as the evaluations'
    strided sampling pads (harness.video.sample_indices)."""
    if start is None:
        start = int(rng.integers(0, max(span - (frames - 1) * step, 1)))
    return np.minimum(start + step * np.arange(frames), span - 1)


def caption_variant(scene, rng: np.random.Generator) -> str:
    """The scene's caption, or (prompt augmentation, as CLIP-style training does) a shorter phrase from the same
    description: the object alone, its colour and shape, or its motion. Zero-shot queries are short phrases."""
    o = scene.objects[0]
    r = rng.random()
    if r < 0.4:
        return scene.caption()
    if r < 0.6:
        return o.phrase()
    if r < 0.8:
        return f"a {o.color} {o.shape}"
    return f"something {o.motion}"


def random_captions(rng: np.random.Generator, n: int) -> list[str]:
    """Captions of random scene descriptions (no rendering): text-only negatives for the alignment loss."""
    from tasks.mini.scenes import random_scene

    out = []
    for _ in range(n):
        scene = random_scene(rng, num_frames=8, height=8, width=8)
        out.append(caption_variant(scene, rng))
    return out


def build_source(name: str, **kwargs) -> ClipSource:
    from harness.registry import load_object

    if name not in SOURCES:
        raise ValueError(f"unknown training data {name!r}; known: {', '.join(sorted(SOURCES))}")
    return load_object(SOURCES[name])(**kwargs)


class ClipMixture:
    """Batches drawn from several sources: `fractions` of each batch (rounded, at least one clip per source when
    its fraction is positive and the batch allows)."""

    def __init__(self, sources: dict[str, ClipSource], fractions: dict[str, float], seed: int = 0):
        self.sources = sources
        total = sum(fractions.values())
        self.fractions = {k: v / total for k, v in fractions.items() if v > 0}
        self.rng = np.random.default_rng(seed)

    def counts(self, batch: int) -> dict[str, int]:
        names = list(self.fractions)
        counts = {k: int(math.floor(self.fractions[k] * batch)) for k in names}
        for k in sorted(names, key=lambda k: -(self.fractions[k] * batch - counts[k])):
            if sum(counts.values()) >= batch:
                break
            counts[k] += 1
        return counts

    def get_state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "sources": {k: s.get_state() for k, s in self.sources.items()}}

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        for k, s in state.get("sources", {}).items():
            if k in self.sources:
                self.sources[k].set_state(s)

    def batch(self, size: int, frames: int, crop: int, resize: int) -> list[Clip]:
        clips = []
        for name, n in self.counts(size).items():
            clips += [self.sources[name].sample(self.rng, frames, crop, resize) for _ in range(n)]
        return clips
