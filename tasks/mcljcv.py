"""MCL-JCV: raw I420 sources, the YUV reader, the mini split, and the `mcljcv-recon` task.

Layout: 30 headerless 8-bit planar YUV 4:2:0 files `videoSRC<NN>_<W>x<H>_<fps>.yuv` (NN = 01..30, 1920x1080,
5 s at 24/25/30 fps), in <root>, <root>/YUV_source, or <root>/<res>/YUV_source and <root>/MCL_JCV/<res>/YUV_source
(the HF mirror; res = 1080P or 720P). Width, height and frame rate come ONLY from the file name; frame k starts at
byte k*W*H*3/2 and holds the Y plane (H x W), then U, then V (each H/2 x W/2).

Colour conversion (`read_yuv420`): the matrix is named, BT.709 by default (HD content), BT.601 as an option (what
ffmpeg applies to a headerless .yuv, so PNGs made with `ffmpeg -s WxH -i x.yuv im%05d.png` are BT.601). Range is
limited ("TV", Y in 16..235, Cb/Cr in 16..240) by default, as the sources are; full range is an option. Chroma is
upsampled by sample replication (each U/V sample covers its 2x2 luma block). Results are rounded to uint8.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.task import Sample, SampleList
from harness.video import VideoDecodeError
from tasks.listing import rejection
from tasks.mini.clips import item_rng, motion_scene, real_frames, scene_frames
from tasks.reconstruction import ReconProtocol, ReconstructionTask

NAME = re.compile(r"^videoSRC(\d{2})_(\d+)x(\d+)_(\d+(?:\.\d+)?)\.yuv$")
# (Kr, Kb) of the luma equation Y = Kr R + (1 - Kr - Kb) G + Kb B
MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


@dataclass(frozen=True)
class YUVSource:
    path: Path
    number: int
    width: int
    height: int
    fps: float

    @property
    def name(self) -> str:
        return f"videoSRC{self.number:02d}"

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3 // 2

    def num_frames(self) -> int:
        """Whole frames in the file; a file that is not a whole number of frames raises DataError."""
        size = self.path.stat().st_size
        n, rest = divmod(size, self.frame_bytes)
        if rest or n == 0:
            raise DataError(str(self.path), f"is {size} bytes, not a whole number of {self.width}x{self.height} "
                                            f"I420 frames ({self.frame_bytes} bytes each): truncated or misnamed")
        return n


def parse_name(path: Path) -> YUVSource:
    m = NAME.match(path.name)
    if not m:
        raise DataError(str(path), "is not named videoSRC<NN>_<W>x<H>_<fps>.yuv")
    num, w, h, fps = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
    if w % 2 or h % 2 or w == 0 or h == 0 or fps <= 0:
        raise DataError(str(path), f"size {w}x{h} or rate {fps} from the name cannot be I420 video")
    return YUVSource(path, num, w, h, fps)


# ---------------------------------------------------------------------------------------------------------------
# YUV <-> RGB
# ---------------------------------------------------------------------------------------------------------------
def _coefficients(matrix: str) -> tuple[float, float, float]:
    if matrix not in MATRICES:
        raise ValueError(f"unknown colour matrix {matrix!r} (known: {sorted(MATRICES)})")
    kr, kb = MATRICES[matrix]
    return kr, 1.0 - kr - kb, kb


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt709",
                  full_range: bool = False) -> np.ndarray:
    """uint8 planes Y (N, H, W), U and V (N, H/2, W/2) -> uint8 RGB (N, H, W, 3), vectorized."""
    kr, kg, kb = _coefficients(matrix)
    yf = y.astype(np.float32)
    cb = np.repeat(np.repeat(u.astype(np.float32), 2, axis=1), 2, axis=2) - 128.0
    cr = np.repeat(np.repeat(v.astype(np.float32), 2, axis=1), 2, axis=2) - 128.0
    if full_range:
        luma = yf
    else:
        luma = (yf - 16.0) * (255.0 / 219.0)
        cb *= 255.0 / 224.0
        cr *= 255.0 / 224.0
    r = luma + 2.0 * (1.0 - kr) * cr
    b = luma + 2.0 * (1.0 - kb) * cb
    g = (luma - kr * r - kb * b) / kg
    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def rgb_to_yuv420(frames: np.ndarray, matrix: str = "bt709", full_range: bool = False) -> bytes:
    """uint8 RGB (N, H, W, 3) -> I420 bytes (per frame: Y, then U, then V; chroma = mean of each 2x2 block)."""
    kr, kg, kb = _coefficients(matrix)
    x = frames.astype(np.float64)
    yl = kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]
    cb = (x[..., 2] - yl) / (2.0 * (1.0 - kb))
    cr = (x[..., 0] - yl) / (2.0 * (1.0 - kr))
    if not full_range:
        yl = 16.0 + yl * (219.0 / 255.0)
        cb *= 224.0 / 255.0
        cr *= 224.0 / 255.0
    n, h, w = yl.shape
    sub = lambda c: c.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4)) + 128.0  # noqa: E731
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (yl, sub(cb), sub(cr))]
    return b"".join(planes[0][i].tobytes() + planes[1][i].tobytes() + planes[2][i].tobytes() for i in range(n))


def read_yuv420(path: str | Path, indices: Sequence[int] | np.ndarray | None = None, width: int | None = None,
                height: int | None = None, matrix: str = "bt709", full_range: bool = False) -> np.ndarray:
    """Frames at `indices` (all if None) of a headerless I420 file as uint8 RGB (N, H, W, 3). The file is
    memory-mapped (only the requested frames are read); width/height default to those in a videoSRC file name."""
    path = Path(path)
    if width is None or height is None:
        src = parse_name(path)
        width, height = src.width, src.height
    src = YUVSource(path, 0, width, height, 1.0)
    n = src.num_frames()
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise VideoDecodeError(str(path), f"has {n} frames; frame {int(idx.max())} was asked for")
    data = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, src.frame_bytes))
    frames = np.asarray(data[idx])
    del data
    ys = width * height
    y = frames[:, :ys].reshape(-1, height, width)
    u = frames[:, ys:ys + ys // 4].reshape(-1, height // 2, width // 2)
    v = frames[:, ys + ys // 4:].reshape(-1, height // 2, width // 2)
    return yuv420_to_rgb(y, u, v, matrix, full_range)


# ---------------------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------------------
def source_dir(root: Path, resolution: str = "1080P") -> Path:
    candidates = (root, root / "YUV_source", root / resolution / "YUV_source",
                  root / "MCL_JCV" / resolution / "YUV_source")
    for d in candidates:
        if d.is_dir() and any(d.glob("*.yuv")):
            return d
    raise MissingDataError(MCLJCV().missing_message(root, "videoSRC<NN>_<W>x<H>_<fps>.yuv files"))


def list_sources(root: Path, resolution: str = "1080P") -> tuple[list[YUVSource], list[dict[str, str]]]:
    folder = source_dir(root, resolution)
    sources, rejected, seen = [], [], {}
    for path in sorted(folder.glob("*.yuv")):
        try:
            src = parse_name(path)
        except DataError as exc:
            rejected.append(rejection(path, exc.problem))
            continue
        if src.number in seen:
            rejected.append(rejection(path, f"source {src.name} is also {seen[src.number]}", sample_id=src.name))
            continue
        seen[src.number] = path.name
        sources.append(src)
    return sources, rejected


def source_sample(src: YUVSource) -> Sample:
    return Sample(src.name, str(src.path), cluster=src.name,
                  meta={"width": src.width, "height": src.height, "fps": src.fps, "source": src.name})


def list_clips(root: Path, clip_frames: int, stride: int = 1, resolution: str = "1080P") -> SampleList:
    """Each source cut into consecutive non-overlapping clips of `clip_frames` frames (`stride` apart) from frame 0;
    the frames after the last whole clip are left out. A file that is not a whole number of frames is rejected."""
    sources, rejected = list_sources(root, resolution)
    span = (clip_frames - 1) * stride + 1
    samples = []
    for src in sources:
        try:
            n = src.num_frames()
        except DataError as exc:
            rejected.append(rejection(src.path, exc.problem, sample_id=src.name))
            continue
        starts = range(0, n - span + 1, span)
        if not starts:
            rejected.append(rejection(src.path, f"has {n} frames, fewer than one clip of {span}", sample_id=src.name))
        for k, start in enumerate(starts):
            samples.append(Sample(f"{src.name}/clip{k:03d}", str(src.path), stratum=src.name, cluster=src.name,
                                  meta={"width": src.width, "height": src.height, "fps": src.fps, "source": src.name,
                                        "start": start, "indices": list(range(start, start + span, stride))}))
    return SampleList(samples, rejected)


class MCLJCV(Dataset):
    name = "mcljcv"
    mini_version = 1
    homepage = "https://mcl.usc.edu/mcl-jcv-dataset/ (the 30 YUV sources; HF mirror uscmcl/MCL-JCV_Dataset)"
    layout = "<root>/videoSRC<NN>_<W>x<H>_<fps>.yuv (or <root>/YUV_source/, <root>/1080P/YUV_source/)"

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_mcljcv_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every .yuv source (badly named files rejected); check_load then checks each file's size."""
        sources, rejected = list_sources(root)
        return SampleList([source_sample(s) for s in sources], rejected)

    def check_load(self, sample: Sample) -> None:
        """The size must be a whole number of frames; the first and last frames are converted."""
        src = parse_name(Path(sample.path))
        n = src.num_frames()
        read_yuv420(src.path, [0, n - 1])


# ---------------------------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MCLJCVReconProtocol(ReconProtocol):
    split: str = "1080P"  # which folder of the HF mirror; a flat folder of sources needs nothing
    sampling: str = "chunks"  # consecutive non-overlapping clips from frame 0, remainder left out
    resize: int = 256
    crop: int = 256
    matrix: str = "bt709"
    full_range: bool = False


class MCLJCVRecon(ReconstructionTask):
    """MCL-JCV: every source cut into non-overlapping 17-frame clips, BT.709 limited range, short side 256 + crop."""

    name: ClassVar[str] = "mcljcv-recon"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "mcljcv"
    Protocol: ClassVar[type] = MCLJCVReconProtocol

    def samples(self, root: Path) -> SampleList:
        if self.protocol.sampling != "chunks":
            raise ValueError("mcljcv-recon cuts each source into consecutive clips: sampling must be 'chunks'")
        return list_clips(root, self.protocol.num_frames, self.protocol.stride, self.protocol.split)

    def load(self, sample: Sample) -> dict[str, Any]:
        p = self.protocol
        frames = read_yuv420(sample.path, sample.meta["indices"], sample.meta["width"], sample.meta["height"],
                             p.matrix, p.full_range)
        return {"frames": self.transform(frames), "indices": sample.meta["indices"], "padded": False}


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# source number -> (fps in the name, content); numbers and rates follow the real set (01 30 fps, 05 25, 17 24, ...)
MINI_SOURCES = {1: (30, "real:bikes"), 5: (25, "scene:slides right"), 17: (24, "real:bigbuckbunny"),
                30: (30, "scene:circles")}
MINI_FRAMES = 36  # two 17-frame clips and 2 frames left over (the real sources have 120-150 frames)
MINI_WIDTH, MINI_HEIGHT = 384, 216  # 16:9 like the 1920x1080 originals


def write_mcljcv_mini(out: Path, seed: int = 0) -> None:
    """Four headerless I420 sources videoSRC<NN>_384x216_<fps>.yuv of 36 frames (BT.709 limited range)."""
    out.mkdir(parents=True, exist_ok=True)
    for number, (fps, item) in MINI_SOURCES.items():
        rng = item_rng(seed, "mcljcv", number)
        kind, what = item.split(":", 1)
        if kind == "real":
            frames = real_frames(what, rng, MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH)
        else:
            frames = scene_frames(motion_scene(rng, what, MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH, fps))
        path = out / f"videoSRC{number:02d}_{MINI_WIDTH}x{MINI_HEIGHT}_{fps}.yuv"
        path.write_bytes(rgb_to_yuv420(frames, "bt709"))
