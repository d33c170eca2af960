"""Pixel fidelity: PSNR in its three reductions and SSIM in its named variants, on uint8-rounded RGB frames.

"PSNR" means three different numbers in the field (see the README): the mean of per-frame PSNR (VidTok,
common_metrics), the PSNR of each video's pooled MSE averaged over videos (TokenBench, LARP, BSQ), and one PSNR of the
MSE pooled over the whole set (torchmetrics' default). We report all three under distinct names.

SSIM follows `skimage.metrics.structural_similarity`, the reference of the conformance fixtures: per channel, mean over
the valid region (the border where the window leaves the image is cropped), then mean over channels and frames.
torchmetrics' SSIM differs from it by up to 2e-4 (kernel construction in float32), hence this implementation,
which filters with scipy's correlate1d in float64 exactly as skimage does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DATA_RANGE = 255.0
# Identical frames have infinite PSNR; like common_metrics_on_video_quality we cap at 100 dB so results stay finite
# JSON. A capped value is only ever reached by (numerically) identical content; such frames are also counted.
PSNR_CAP_DB = 100.0


@dataclass(frozen=True)
class SSIMVariant:
    name: str
    window: str  # "gaussian" or "uniform"
    size: int
    sigma: float = 1.5
    sample_covariance: bool = False


SSIM_VARIANTS = {
    # Wang et al. 2004 as skimage computes it with gaussian_weights=True, sigma=1.5, use_sample_covariance=False.
    "gaussian11": SSIMVariant("gaussian11", "gaussian", 11, 1.5, False),
    # skimage's defaults: a uniform 7x7 window with the sample covariance (TokenBench uses this).
    "skimage-uniform7": SSIMVariant("skimage-uniform7", "uniform", 7, 0.0, True),
}


def _as_float64_nchw(frames) -> torch.Tensor:
    """uint8 or float (T, H, W, 3) -> float64 (T, 3, H, W) on the 0..255 scale."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got {tuple(x.shape)}")
    return x.to(torch.float64).permute(0, 3, 1, 2)


def frame_mse(reference, reconstruction) -> torch.Tensor:
    """Per-frame mean squared error (T,) in float64 on the 0..255 scale."""
    a, b = _as_float64_nchw(reference), _as_float64_nchw(reconstruction)
    if a.shape != b.shape:
        raise ValueError(f"reference {tuple(a.shape)} and reconstruction {tuple(b.shape)} differ in shape")
    return (a - b).pow_(2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor | float, data_range: float = DATA_RANGE, cap: float = PSNR_CAP_DB):
    """10 log10(range^2 / mse), capped at `cap` dB (mse = 0 gives the cap)."""
    m = torch.as_tensor(mse, dtype=torch.float64)
    p = 10.0 * torch.log10(data_range ** 2 / m)
    return p.clamp(max=cap)


def _window_1d(variant: SSIMVariant) -> np.ndarray:
    if variant.window == "gaussian":
        r = np.arange(variant.size, dtype=np.float64) - (variant.size - 1) / 2
        w = np.exp(-0.5 * (r / variant.sigma) ** 2)
    else:
        w = np.ones(variant.size, dtype=np.float64)
    return w / w.sum()


def _filter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable filtering of (N, C, H, W) over H and W, cropped to the 'valid' region (where the window fits).

    scipy's correlate1d is the routine skimage's SSIM uses, and in float64 it is ~25x faster than torch's depthwise
    conv2d on the CPU."""
    from scipy.ndimage import correlate1d

    pad = (len(w) - 1) // 2
    y = correlate1d(correlate1d(x, w, axis=2, mode="reflect"), w, axis=3, mode="reflect")
    return y[:, :, pad:y.shape[2] - pad, pad:y.shape[3] - pad]


def ssim_frames(reference, reconstruction, variant: str | SSIMVariant = "gaussian11",
                data_range: float = DATA_RANGE, chunk: int = 8) -> torch.Tensor:
    """Per-frame SSIM (T,) averaged over the three channels."""
    v = SSIM_VARIANTS[variant] if isinstance(variant, str) else variant
    a, b = _as_float64_nchw(reference).numpy(), _as_float64_nchw(reconstruction).numpy()
    if a.shape != b.shape:
        raise ValueError(f"reference {tuple(a.shape)} and reconstruction {tuple(b.shape)} differ in shape")
    if min(a.shape[-2:]) < v.size:
        raise ValueError(f"frames of {tuple(a.shape[-2:])} are smaller than the {v.size}x{v.size} SSIM window")
    w = _window_1d(v)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = v.size * v.size
    cov_norm = n / (n - 1) if v.sample_covariance else 1.0
    out = []
    for s in range(0, a.shape[0], chunk):
        x, y = a[s:s + chunk], b[s:s + chunk]
        # four filterings, not five: SSIM needs only the sum of the two variances (vx + vy)
        ux, uy = _filter(x, w), _filter(y, w)
        usq, uxy = _filter(x * x + y * y, w), _filter(x * y, w)
        vsum, vxy = cov_norm * (usq - ux * ux - uy * uy), cov_norm * (uxy - ux * uy)
        s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vsum + c2))
        out.append(s_map.mean(axis=(2, 3)).mean(axis=1))
    return torch.from_numpy(np.concatenate(out))


def ms_ssim_frames(reference, reconstruction, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Per-frame MS-SSIM (Wang et al. 2003, 5 scales) through torchmetrics; needs frames of at least 161 px."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    a, b = _as_float64_nchw(reference), _as_float64_nchw(reconstruction)
    return ms_ssim(b, a, data_range=data_range, reduction="none")


@dataclass
class VideoFidelity:
    """The per-video numbers every reconstruction task records."""

    frames: int
    psnr_frame: float  # mean over frames of per-frame PSNR
    psnr_video: float  # PSNR of the MSE pooled over the video
    ssim: float  # mean over frames of per-frame SSIM (gaussian11)
    sse: float  # sum of squared errors (for the pooled PSNR over a set)
    values: int  # number of values summed in sse
    identical_frames: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def video_fidelity(reference, reconstruction, ssim_variant: str = "gaussian11") -> VideoFidelity:
    mse = frame_mse(reference, reconstruction)
    per_frame = psnr_from_mse(mse)
    ssim = ssim_frames(reference, reconstruction, ssim_variant)
    values = int(np.prod(np.asarray(reference).shape))
    return VideoFidelity(
        frames=int(mse.numel()),
        psnr_frame=float(per_frame.mean()),
        psnr_video=float(psnr_from_mse(mse.mean())),
        ssim=float(ssim.mean()),
        sse=float(mse.sum() * (values / mse.numel())),
        values=values,
        identical_frames=int((mse == 0).sum()),
    )


def pooled_psnr(sse_total: float, values_total: int) -> float:
    """PSNR of the MSE pooled over every value of every video (torchmetrics' PeakSignalNoiseRatio default)."""
    if values_total <= 0:
        return math.nan
    return float(psnr_from_mse(sse_total / values_total))
