"""Reconstruction losses for training (paper: L_recon = L1 + SSIM + LPIPS, equal weights).

SSIM here is the differentiable training loss 1 - SSIM with an 11x11 Gaussian window (sigma 1.5) on [-1, 1] data
(data range 2), per frame and channel over the valid region, as the release's ssim_loss.py; the evaluation metric
lives in harness/metrics/pixel.py. LPIPS (harness/metrics/lpips.py) is used only when its weights can be loaded
locally; training logs record whether it was.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).float()
    return torch.outer(g, g)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, size: int = 11,
             sigma: float = 1.5) -> torch.Tensor:
    """SSIM map of (N, C, H, W) images (Gaussian window, valid region, K1 0.01, K2 0.03)."""
    c = x.shape[1]
    win = _gaussian_window(size, sigma).to(x).expand(c, 1, size, size)
    filt = functools.partial(F.conv2d, weight=win, groups=c)
    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def video_ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM over the frames of (B, 3, T, H, W) clips; frames smaller than the window use a smaller one."""
    b, c, t, h, w = x.shape
    size = min(11, h, w) | 1
    if size % 2 == 0:
        size -= 1
    xf = x.transpose(1, 2).reshape(b * t, c, h, w)
    yf = y.transpose(1, 2).reshape(b * t, c, h, w)
    return 1 - ssim_map(xf, yf, size=size).mean()


class LPIPSLoss:
    """LPIPS (harness.metrics.lpips) as a training loss when its weights exist locally; otherwise `available` is
    False and `reason` names the missing file (training then runs without it and records so)."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu"):
        from harness.metrics.lpips import load_lpips, lpips_unavailable

        self.fn = None
        missing = lpips_unavailable(net)
        self.available = missing is None
        if missing:
            self.reason = f"LPIPS {net} off: {missing}"
            return
        self.fn, hashes = load_lpips(net, device)
        self.fn.requires_grad_(False).eval()
        self.reason = f"LPIPS {net} on ({', '.join(f'{k} sha256 {v[:12]}' for k, v in hashes.items())})"

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        xf = x.transpose(1, 2).reshape(b * t, c, h, w)
        yf = y.transpose(1, 2).reshape(b * t, c, h, w)
        return self.fn(xf, yf).mean()


def recon_losses(recon: torch.Tensor, target: torch.Tensor, lpips: LPIPSLoss | None = None) -> dict[str, torch.Tensor]:
    out = {"l1": (recon - target).abs().mean(), "ssim": video_ssim_loss(recon, target)}
    if lpips is not None and lpips.available:
        out["lpips"] = lpips(recon, target)
    return out
