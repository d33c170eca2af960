"""Fit any clip to a model's shape constraints and back: pad up to the next valid shape, trim the output to the input.

Video autoencoders accept only some shapes: causal ones want 1 + k*t frames (t their temporal factor, or 8 for
CogVideoX in diffusers, see models/baselines/vae.py) and sides that are multiples of their spatial factor. Instead of
refusing other inputs (or silently cropping them, which would score a different clip), a clip is padded:

* time: the last frame is repeated up to the next valid count (edge padding, as the Cosmos tokenizer does);
* space: the bottom and right edges are extended to the next multiple, by replicating the border pixels
  ("replicate", default) or mirroring the image ("reflect", mirror without repeating the edge pixel).

The decoded clip is trimmed back to the input's first T frames and top-left H x W pixels, so every score is computed
on exactly the pixels of the input.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PAD_MODES = ("replicate", "reflect")


def next_valid_frames(num_frames: int, step: int) -> int:
    """The smallest count 1 + k*step (k >= 0) that is at least `num_frames`."""
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    return 1 + step * math.ceil((num_frames - 1) / step)


def next_multiple(size: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is at least `size`."""
    if size < 1:
        raise ValueError(f"a side of {size} pixels cannot be padded")
    return multiple * math.ceil(size / multiple)


def padded_shape(shape: tuple[int, int, int], frame_step: int, spatial_multiple: int) -> tuple[int, int, int]:
    """(T, H, W) -> the shape the model is given."""
    t, h, w = shape
    return (next_valid_frames(t, frame_step), next_multiple(h, spatial_multiple), next_multiple(w, spatial_multiple))


def pad_video(video: torch.Tensor, target: tuple[int, int, int], mode: str = "replicate") -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, *target): last frame repeated in time, bottom/right edges padded in space."""
    if mode not in PAD_MODES:
        raise ValueError(f"spatial padding {mode!r}: expected one of {', '.join(PAD_MODES)}")
    t, h, w = video.shape[-3:]
    pt, ph, pw = target[0] - t, target[1] - h, target[2] - w
    if min(pt, ph, pw) < 0:
        raise ValueError(f"cannot pad {(t, h, w)} to the smaller {tuple(target)}")
    if pt:
        video = torch.cat([video, video[:, :, -1:].expand(-1, -1, pt, -1, -1)], dim=2)
    if ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            raise ValueError(f"reflect padding of {h}x{w} by {ph}x{pw} needs each pad smaller than its side; "
                             "use replicate")
        b, c, n = video.shape[:3]
        flat = video.reshape(b, c * n, h, w)  # 2-D padding of every frame; 'reflect' is not defined on 5-D for time
        video = F.pad(flat, (0, pw, 0, ph), mode=mode).reshape(b, c, n, h + ph, w + pw)
    return video


def trim_video(video: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """The first T frames and the top-left H x W pixels of a (B, C, T', H', W') output."""
    t, h, w = shape
    if video.shape[2] < t or video.shape[3] < h or video.shape[4] < w:
        raise ValueError(f"the model returned {tuple(video.shape[2:])}, smaller than the input {tuple(shape)}")
    return video[:, :, :t, :h, :w]
