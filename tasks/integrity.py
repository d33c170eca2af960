"""`check-data` decoding checks that also catch truncation in containers that state no frame count.

MP4 states its frame count, so a truncated file fails when its last frame is decoded. WebM/Matroska (SSv2, some
Kinetics copies) state only a duration: a file cut short simply decodes to fewer frames. So the decoded count is
compared with duration x frame rate from the container header as well.
"""
from __future__ import annotations

from pathlib import Path

from harness.video import VideoDecodeError, probe, read_frames

# a complete file decodes to at least this fraction of duration x fps (minus one frame): real files differ from their
# stated duration by a frame or two, a truncated WebM loses whole clusters
COMPLETE_FRACTION = 0.9


def stated_duration(path: str | Path) -> float | None:
    """Seconds of video the header states: the video stream's duration, else the container's (WebM/Matroska state
    only the latter, which also covers audio); None when neither is stated."""
    import av

    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return c.duration / 1_000_000 if c.duration else None
    except Exception:  # noqa: BLE001 - an unopenable file is reported by probe()
        return None


def check_video(path: str | Path) -> None:
    """Raise VideoDecodeError unless the first and last frames decode and the frame count matches the header."""
    info = probe(path)
    duration = stated_duration(path)
    if duration and info.fps:
        expected = duration * info.fps
        if info.num_frames < COMPLETE_FRACTION * expected - 1:
            raise VideoDecodeError(str(path), f"decodes to {info.num_frames} frames but its header states "
                                              f"{duration:.2f} s at {info.fps:g} fps (~{expected:.0f} frames): "
                                              "truncated")
    read_frames(path, [0, info.num_frames - 1], backend="pyav", info=info)
