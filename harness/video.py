"""Video I/O: exact uint8 RGB frames, pure frame-index sampling, resize and crop, writing.

decord is the fast path for random access. PyAV is the fallback and the only reader for AV1 (decord cannot decode
it) and HEVC (decord's random access there can land a few frames off, so we read sequentially). Frames are always
returned as uint8 (N, H, W, 3) RGB arrays; nothing lossy is cached.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import DataError

# Codecs decord cannot decode, or cannot seek exactly: read these sequentially with PyAV.
SEQUENTIAL_CODECS = frozenset({"hevc", "h265", "av1", "libdav1d", "libaom-av1"})


class VideoDecodeError(DataError):
    """A video that cannot be opened or does not hold the frames asked for."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Frame-index sampling (pure functions)
# ---------------------------------------------------------------------------------------------------------------
def sample_indices(num_frames: int, num_samples: int, mode: str = "center", stride: int = 1, start: int = 0,
                   pad: str = "repeat") -> np.ndarray:
    """Frame indices for one clip.

    mode "center": a contiguous clip of `num_samples` frames `stride` apart, centred in the video.
    mode "stride": the same clip starting at frame `start`.
    mode "uniform": one frame at the centre of each of `num_samples` equal segments (TSN / mmaction2 test mode).
    mode "all": every frame (num_samples ignored).
    A video shorter than the clip is padded: "repeat" repeats the last frame, "loop" starts again from the first.
    """
    if num_frames <= 0:
        raise ValueError("a video with no frames cannot be sampled")
    if mode == "all":
        return np.arange(num_frames, dtype=np.int64)
    if num_samples <= 0 or stride <= 0:
        raise ValueError(f"num_samples and stride must be positive (got {num_samples}, {stride})")
    if mode == "uniform":
        seg = num_frames / num_samples
        idx = np.floor(np.arange(num_samples) * seg + seg / 2).astype(np.int64)
        return np.minimum(idx, num_frames - 1)
    if mode == "center":
        span = (num_samples - 1) * stride + 1
        start = max(0, (num_frames - span) // 2)
    elif mode != "stride":
        raise ValueError(f"unknown sampling mode {mode!r}")
    idx = start + stride * np.arange(num_samples, dtype=np.int64)
    beyond = idx >= num_frames
    if beyond.any():
        if pad == "repeat":
            idx[beyond] = num_frames - 1
        elif pad == "loop":
            idx = idx % num_frames
        else:
            raise ValueError(f"unknown padding {pad!r}")
    return idx


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------
def probe(path: str | Path) -> VideoInfo:
    """Container metadata; the frame count is counted by decoding when the container does not state it."""
    import av

    path = str(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise VideoDecodeError(path, "unsupported codec: its video stream uses a codec FFmpeg cannot decode")
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n = int(stream.frames or 0)
            codec = stream.codec_context.name
            width, height = stream.codec_context.width, stream.codec_context.height
            if n <= 0:
                n = sum(1 for _ in container.decode(video=0))
    except VideoDecodeError:
        raise
    except Exception as exc:  # av raises many kinds of errors for broken files
        raise VideoDecodeError(path, f"cannot be opened ({type(exc).__name__}: {exc})") from exc
    if n <= 0:
        raise VideoDecodeError(path, "holds no decodable frames")
    return VideoInfo(path, n, fps, width, height, codec)


# A complete file decodes to at least this fraction of its stated duration x fps (minus one frame): real files differ
# from their stated duration by a frame or two, while a truncated WebM/Matroska file loses whole clusters.
COMPLETE_FRACTION = 0.9


def stated_duration(path: str | Path) -> float | None:
    """Seconds of video the header states: the video stream's duration, else the container's (WebM/Matroska state
    only the latter); None when neither is stated."""
    import av

    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return c.duration / 1_000_000 if c.duration else None
    except Exception:  # noqa: BLE001 - an unopenable file is reported by probe()
        return None


def verify_video(path: str | Path) -> VideoInfo:
    """Raise VideoDecodeError unless the first and last frames decode and the frame count matches the header.

    MP4/AVI state their frame count, so a truncated file fails when its last frame is decoded; WebM/Matroska state
    only a duration, and a file cut short simply decodes to fewer frames, hence the comparison with the header."""
    info = probe(path)
    duration = stated_duration(path)
    if duration and info.fps:
        expected = duration * info.fps
        if info.num_frames < COMPLETE_FRACTION * expected - 1:
            raise VideoDecodeError(str(path), f"decodes to {info.num_frames} frames but its header states "
                                              f"{duration:.2f} s at {info.fps:g} fps (~{expected:.0f} frames): "
                                              "truncated")
    read_frames(path, [0, info.num_frames - 1], backend="pyav", info=info)
    return info


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray | None = None, backend: str = "auto",
                info: VideoInfo | None = None) -> np.ndarray:
    """Decode the frames at `indices` (all frames if None) as a uint8 (N, H, W, 3) RGB array.

    backend "auto" uses decord except for codecs it cannot seek exactly, and falls back to PyAV on any decord error.
    """
    path = str(path)
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"unknown video backend {backend!r}")
    if backend == "auto":
        info = info or probe(path)
        backend = "pyav" if info.codec in SEQUENTIAL_CODECS or _decord_missing() else "decord"
        if backend == "decord":
            try:
                return _read_decord(path, indices)
            except VideoDecodeError:
                backend = "pyav"
    if backend == "decord":
        return _read_decord(path, indices)
    return _read_pyav(path, indices)


def _decord_missing() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return True
    return False


def _read_decord(path: str, indices) -> np.ndarray:
    import decord

    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        n = len(reader)
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise VideoDecodeError(path, f"has {n} frames; frame {int(idx.max())} was asked for")
        frames = reader.get_batch(idx.tolist()).asnumpy()
        del reader
    except VideoDecodeError:
        raise
    except Exception as exc:
        raise VideoDecodeError(path, f"decord failed ({type(exc).__name__}: {exc})") from exc
    return _check_frames(path, frames, len(idx))


def _read_pyav(path: str, indices) -> np.ndarray:
    """Sequential decode, keeping the wanted frames (exact for every codec, at the cost of decoding the prefix)."""
    import av

    wanted = None if indices is None else np.asarray(indices, dtype=np.int64)
    keep: dict[int, np.ndarray] = {}
    last = -1 if wanted is None else int(wanted.max(initial=-1))
    targets = None if wanted is None else set(wanted.tolist())
    frames: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if targets is None:
                    frames.append(frame.to_ndarray(format="rgb24"))
                elif i in targets:
                    keep[i] = frame.to_ndarray(format="rgb24")
                    if i >= last:
                        break
    except Exception as exc:
        if targets is None or len(keep) < len(targets):
            raise VideoDecodeError(path, f"cannot be decoded ({type(exc).__name__}: {exc})") from exc
    if targets is None:
        if not frames:
            raise VideoDecodeError(path, "holds no decodable frames")
        return np.stack(frames)
    missing = sorted(targets - keep.keys())
    if missing:
        raise VideoDecodeError(path, f"has only {len(keep) and max(keep) + 1 or 0}+ decodable frames; "
                                     f"frame {missing[0]} was asked for")
    return _check_frames(path, np.stack([keep[i] for i in wanted.tolist()]), len(wanted))


def _check_frames(path: str, frames: np.ndarray, n: int) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[0] != n or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoDecodeError(path, f"decoded to an unexpected array {frames.shape} {frames.dtype}")
    return frames


def read_image_sequence(paths: Sequence[str | Path]) -> np.ndarray:
    """JPEG/PNG frames (e.g. DAVIS JPEGImages) as a uint8 (N, H, W, 3) RGB array."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        except Exception as exc:
            raise VideoDecodeError(str(p), f"cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise VideoDecodeError(str(paths[0]), f"sequence frames differ in size: {sorted(shapes)}")
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------------------
# Spatial transforms on uint8 frames (torchvision semantics, without torchvision)
# ---------------------------------------------------------------------------------------------------------------
def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(new_h, new_w) with the short side at `size` and the long side truncated, as torchvision Resize(int)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resize(frames: np.ndarray | torch.Tensor, height: int, width: int, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of uint8 (T, H, W, 3) frames to uint8.

    Uses torch's native uint8 kernel (fixed-point, channels-last), the same one torchvision's Resize runs on uint8
    tensors: ~50x faster than resizing in float, and within +-1 of it."""
    x = torch.as_tensor(frames)
    if tuple(x.shape[1:3]) == (height, width):
        return x
    nchw = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        y = F.interpolate(nchw.contiguous(memory_format=torch.channels_last), size=(height, width), mode="bilinear",
                          align_corners=False, antialias=antialias)
    else:
        y = F.interpolate(nchw.float(), size=(height, width), mode="bilinear", align_corners=False,
                          antialias=antialias).round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous()


def resize_short_side(frames, size: int, antialias: bool = True) -> torch.Tensor:
    h, w = frames.shape[1:3]
    return resize(frames, *short_side_size(h, w, size), antialias=antialias)


def center_crop(frames, height: int, width: int | None = None) -> torch.Tensor:
    """Centre crop with torchvision's rounding of the offsets."""
    width = height if width is None else width
    x = torch.as_tensor(frames)
    h, w = x.shape[1:3]
    if height > h or width > w:
        raise ValueError(f"cannot crop {height}x{width} from {h}x{w}")
    top, left = int(round((h - height) / 2.0)), int(round((w - width) / 2.0))
    return x[:, top:top + height, left:left + width]


# ---------------------------------------------------------------------------------------------------------------
# Model-side tensors: float (B, 3, T, H, W) in [-1, 1], the convention of video VAEs
# ---------------------------------------------------------------------------------------------------------------
def to_model_input(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., T, H, W, 3) -> float32 (..., 3, T, H, W) in [-1, 1]."""
    x = torch.as_tensor(frames)
    x = x.movedim(-1, -4).float()
    return x.div_(127.5).sub_(1.0)


def to_uint8_frames(video: torch.Tensor) -> torch.Tensor:
    """float (..., 3, T, H, W) in [-1, 1] -> uint8 (..., T, H, W, 3), rounded as when saving to a file."""
    x = video.detach().float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
    return x.movedim(-4, -1).contiguous()


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------
def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "libx264",
                pix_fmt: str = "yuv420p", options: dict | None = None, codec_tag: str | None = None,
                bit_rate: int | None = None, container_options: dict | None = None) -> None:
    """Encode uint8 (T, H, W, 3) RGB frames into `path` with PyAV (container chosen from the suffix).

    `container_options` go to the muxer, e.g. {"fflags": "+bitexact"}: WebM/Matroska otherwise write a random
    segment UID and a date, so the same frames would not give the same bytes twice."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.shape} {frames.dtype}")
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    opts = {k: str(v) for k, v in (container_options or {}).items()}
    with av.open(str(path), mode="w", options=opts) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = {k: str(v) for k, v in options.items()}
        if codec_tag:
            stream.codec_context.codec_tag = codec_tag
        if bit_rate:
            stream.bit_rate = bit_rate
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

