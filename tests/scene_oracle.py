"""A TEST adapter whose features and text embeddings speak the words of the procedural mini scenes.

It is "oracle-ish" on purpose: it proves that the language protocols score well above chance when a model's tokens
do carry language-aligned semantics, and (with `signal=False`) that they score at chance when they do not. It knows
how tasks/mini/scenes.py draws (flat palette-coloured shapes over textured backgrounds) and reads that back from the
pixels; nothing is looked up from the annotations.

Features: one channel per vocabulary word (8 colours, 4 shapes, 11 motions). A pixel of an object carries 1 in its
colour, in the shape its blob looks like over the clip, and in the motion its track performs over the clip; a
background pixel carries zeros. Cells average their pixels (and their frames, for a temporally compressed level).
Text: the same words found in the text (motion phrases in any of the forms the mini splits use) as a one-hot bag.
"""
from __future__ import annotations

import re
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from harness.video import to_uint8_frames
from models.base import EMBED_TEXT, FEATURES, ModelAdapter, ModelMetadata
from models.baselines.downsample import causal_groups
from tasks.mini.clips import MOTION_ING
from tasks.mini.scenes import COLORS, MOTIONS, SHAPES

MOTION_WORDS = (*MOTIONS, "stays still")
VOCAB = (*COLORS, *SHAPES, *MOTION_WORDS)
PALETTE = np.array(list(COLORS.values()), np.float32)
# motion phrases in every form the mini splits write: "slides left", "sliding left", SSv2 templates, ANet labels
SYNONYMS = {m: [m, MOTION_ING[m]] for m in MOTION_WORDS}
SYNONYMS["slides left"] += ["from right to left"]
SYNONYMS["slides right"] += ["from left to right"]
SYNONYMS["moves up"] += ["moving something up"]
SYNONYMS["moves down"] += ["moving something down"]
SYNONYMS["grows"] += ["approaching something"]
SYNONYMS["shrinks"] += ["moving away from something"]


def text_words(text: str) -> set[str]:
    t = " " + re.sub(r"[^a-z ]+", " ", text.lower()) + " "
    words = {w for w in (*COLORS, *SHAPES) if f" {w} " in t}
    words |= {m for m, forms in SYNONYMS.items() if any(f" {f} " in t for f in forms)}
    return words


def object_pixels(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour index per pixel, bool object mask) of one uint8 frame: flat (3x3 colour std < 3) pixels close to a
    palette colour times a shade in [0.7, 1], minus the colours the textured background is made of."""
    x = frame.astype(np.float32)
    mean = ndimage.uniform_filter(x, (3, 3, 1))
    sq = ndimage.uniform_filter(x * x, (3, 3, 1))
    std = np.sqrt(np.maximum(sq - mean * mean, 0)).mean(-1)
    shade = np.clip((x @ PALETTE.T) / (PALETTE * PALETTE).sum(1), 0.7, 1.0)  # (H, W, P)
    resid = np.linalg.norm(x[..., None, :] - shade[..., None] * PALETTE, axis=-1)
    colour, best = resid.argmin(-1), resid.min(-1)
    near = best < 24
    flat = std < 3.0
    textured = np.bincount(colour[near & ~flat], minlength=len(PALETTE)) > 0.03 * frame.shape[0] * frame.shape[1]
    mask = ndimage.binary_opening(flat & near & ~textured[colour], np.ones((3, 3), bool))
    return colour, mask


def shape_of(blob: np.ndarray) -> int:
    """Index into SHAPES from a blob's fill of its bounding box and the vertical offset of its centroid."""
    ys, xs = np.nonzero(blob)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill = len(ys) / (h * w)
    offset = (ys.mean() - (ys.min() + ys.max()) / 2) / h
    if fill > 0.9:
        return SHAPES.index("square")
    if fill > 0.68:
        return SHAPES.index("circle")
    return SHAPES.index("triangle") if offset > 0.06 else SHAPES.index("diamond")


def reversals(v: np.ndarray, delta: float) -> int:
    """Direction changes of a 1-D path that move back by more than `delta` from the extreme reached before."""
    count, direction, extreme = 0, 0, v[0]
    for x in v[1:]:
        if direction >= 0 and x > extreme or direction <= 0 and x < extreme:
            extreme = x
        if direction >= 0 and x < extreme - delta or direction <= 0 and x > extreme + delta:
            count += direction != 0
            direction, extreme = (-1 if x < extreme else 1), x
        elif direction == 0 and abs(x - v[0]) > delta:
            direction = 1 if x > v[0] else -1
    return count


def motion_of(track: list[tuple[float, float, float, float]], short: float) -> int:
    """Index into MOTION_WORDS of a track [(cx, cy, area, fill) per distinct frame], from quantities that do not
    depend on the timing of the frames: growth of the area, extent, direction reversals of x and y, the straightness
    of the path in the image plane, and the displacement; in place, the change of the blob's fill (spinning)."""
    if len(track) < 3:
        return MOTION_WORDS.index("stays still")
    a = np.asarray(track, np.float64)
    xy = a[:, :2] / short
    growth = np.log(a[-2:, 2].mean() / a[:2, 2].mean())
    if abs(growth) > 0.5:
        return MOTION_WORDS.index("grows" if growth > 0 else "shrinks")
    extent = np.ptp(xy, axis=0)
    if extent.max() < 0.03:
        return MOTION_WORDS.index("spins" if a[:, 3].std() > 0.03 else "stays still")
    rev_x, rev_y = reversals(xy[:, 0], 0.03), reversals(xy[:, 1], 0.03)
    centred = xy - xy.mean(0)
    deviation = np.sqrt(np.linalg.svd(centred, compute_uv=False)[-1] ** 2 / len(xy))  # off the best line
    dx, dy = xy[-1] - xy[0]
    if rev_x >= 1 and rev_y >= 1 or (deviation > 0.012 and rev_y == 0):
        return MOTION_WORDS.index("circles")
    if rev_y >= 1:
        return MOTION_WORDS.index("bounces" if extent[0] < 0.05 else "zigzags")
    if abs(dx) > 0.06 and abs(dy) > 0.06:
        return MOTION_WORDS.index("zigzags")
    if abs(dx) >= abs(dy):
        return MOTION_WORDS.index("slides left" if dx < 0 else "slides right")
    return MOTION_WORDS.index("moves up" if dy < 0 else "moves down")


def word_maps(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, V) vocabulary maps of one uint8 clip (T, H, W, 3)."""
    t, h, w = frames.shape[:3]
    short = float(min(h, w))
    out = np.zeros((t, h, w, len(VOCAB)), np.float32)
    blobs: dict[int, list[tuple[int, np.ndarray]]] = {}
    repeat = np.zeros(t, bool)  # a frame equal to the previous one (a clip padded by repetition) adds no motion
    repeat[1:] = [np.array_equal(frames[f], frames[f - 1]) for f in range(1, t)]
    for f in range(t):
        colour, mask = object_pixels(frames[f])
        for c in np.unique(colour[mask]):
            ids, n = ndimage.label(mask & (colour == c))
            if n == 0:
                continue
            sizes = np.bincount(ids.reshape(-1))[1:]
            k = int(np.argmax(sizes)) + 1
            if sizes[k - 1] >= 12:
                blobs.setdefault(int(c), []).append((f, ids == k))
    for c, seq in blobs.items():
        track, shapes = [], []
        for f, blob in seq:
            ys, xs = np.nonzero(blob)
            bh, bw = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
            border = ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1
            if not repeat[f] and not border:  # a blob cut by the frame edge has a displaced centroid
                track.append((xs.mean(), ys.mean(), float(len(ys)), len(ys) / (bh * bw)))
            shapes.append(shape_of(blob))
        shape = int(np.bincount(shapes).argmax())
        motion = motion_of(track, short)
        vec = np.zeros(len(VOCAB), np.float32)
        vec[[c, len(COLORS) + shape, len(COLORS) + len(SHAPES) + motion]] = 1
        for f, blob in seq:
            out[f][blob] = vec
    return out


class SceneOracle(ModelAdapter):
    """Test adapter: vocabulary features of the mini scenes and bag-of-words text embeddings (see the module)."""

    capabilities = frozenset({FEATURES, EMBED_TEXT})
    metadata = ModelMetadata("Scene oracle (test only)", family="reference", discrete=False,
                             source="tests/scene_oracle.py", notes="reads the procedural scenes' words from pixels")

    def __init__(self, device="cpu", signal: bool = True, stride: int = 8, t_last: int = 4, **args):
        super().__init__(device, signal=signal, stride=stride, t_last=t_last, **args)
        self.signal, self.stride, self.t_last = bool(signal), int(stride), int(t_last)

    def feature_stride(self, level="last") -> tuple[int, int, int]:
        if level not in ("first", "last", 0, -1):
            raise ValueError(f"levels are 'first' and 'last', not {level!r}")
        return (1 if level in ("first", 0) else self.t_last), self.stride, self.stride

    def features(self, video: torch.Tensor, level="last") -> torch.Tensor:
        t_stride, s, _ = self.feature_stride(level)
        frames = to_uint8_frames(video.cpu()).numpy()
        out = []
        for clip in frames:
            if self.signal:
                maps = torch.from_numpy(word_maps(clip))
            else:  # chance: noise that depends only on the clip's content
                g = torch.Generator().manual_seed(zlib.crc32(clip.tobytes()))
                maps = torch.randn(clip.shape[0], clip.shape[1], clip.shape[2], len(VOCAB), generator=g)
            cells = F.avg_pool2d(maps.permute(0, 3, 1, 2), s, ceil_mode=True).permute(0, 2, 3, 1)
            out.append(torch.stack([cells[a:b].mean(0) for a, b in causal_groups(len(clip), t_stride)]))
        return torch.stack(out).to(video.device)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), len(VOCAB))
        for i, text in enumerate(texts):
            if self.signal:
                for word in text_words(text):
                    out[i, VOCAB.index(word)] = 1.0
            else:
                out[i] = torch.randn(len(VOCAB), generator=torch.Generator().manual_seed(zlib.crc32(text.encode())))
        return out
