"""FVD: I3D features of whole clips, a Gaussian per set, and the Fréchet distance between them.

Two detector lineages, each with its own preprocessing, named in every result:

* `styleganv` — the StyleGAN-V TorchScript I3D (`i3d_torchscript.pt`; TokenBench, LARP, BSQ-ViT, cd-fvd, Latte,
  common_metrics `styleganv`). Frames are scaled to [0, 1], resized bilinearly (align_corners=False, no antialiasing)
  so the short side is 224 (long side rounded up), centre-cropped to 224x224 (offsets floored) and mapped to [-1, 1],
  as common_metrics `fvd/styleganv` and TokenBench do; the detector is then called as LARP calls it,
  `rescale=False, resize=True, return_features=True` (its internal resize to 224x224 is the identity on these
  inputs, so both references give the same features). Square inputs (the 128x128 UCF protocol) are resized whole.
* `videogpt` — the VideoGPT/TATS PyTorch I3D (`i3d_pretrained_400.pt`; OmniTokenizer, Open-MAGVIT2, cd-fvd `i3d`).
  Frames are resized directly to 224x224 (aspect squashed; bilinear, align_corners=False, no antialiasing) on the
  0..255 scale and mapped to [-1, 1] by 2x/255 - 1, as TATS `preprocess`; output: 400 logits averaged over time.

The distance is `harness.metrics.frechet` (np.cov + scipy sqrtm, plus the robust route).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.metrics.frechet import FeatureStats, FrechetResult, frechet_from_stats
from harness.weights import find_weight, missing_message, weight_sha256

RESOLUTION = 224


def _frames_to_float(frames) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B*T, 3, H, W) on the 0..255 scale."""
    x = torch.as_tensor(frames)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 (B, T, H, W, 3) frames, got {tuple(x.shape)}")
    return x.flatten(0, 1).permute(0, 3, 1, 2).float()


def preprocess_videogpt(frames) -> torch.Tensor:
    """TATS/VideoGPT: direct bilinear resize to 224x224 on 0..255, then 2x/255 - 1 -> (B, 3, T, 224, 224)."""
    b, t = frames.shape[:2]
    x = F.interpolate(_frames_to_float(frames), size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False)
    x = 2.0 * x / 255.0 - 1.0
    return x.view(b, t, 3, RESOLUTION, RESOLUTION).transpose(1, 2).contiguous()


def styleganv_resize_size(height: int, width: int, resolution: int = RESOLUTION) -> tuple[int, int]:
    """Short side to `resolution`, long side ceil(long * scale), as common_metrics `preprocess_single`."""
    scale = resolution / min(height, width)
    if height < width:
        return resolution, math.ceil(width * scale)
    return math.ceil(height * scale), resolution


def preprocess_styleganv(frames) -> torch.Tensor:
    """StyleGAN-V lineage: [0, 1], short side to 224, centre crop 224x224, (x - 0.5) * 2 -> (B, 3, T, 224, 224)."""
    b, t, h, w = frames.shape[:4]
    x = _frames_to_float(frames) / 255.0
    x = F.interpolate(x, size=styleganv_resize_size(h, w), mode="bilinear", align_corners=False)
    hh, ww = x.shape[-2:]
    top, left = (hh - RESOLUTION) // 2, (ww - RESOLUTION) // 2
    x = x[:, :, top:top + RESOLUTION, left:left + RESOLUTION]
    x = (x - 0.5) * 2.0
    return x.reshape(b, t, 3, RESOLUTION, RESOLUTION).transpose(1, 2).contiguous()


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    weight: str
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    variant: str


DETECTORS: dict[str, DetectorSpec] = {
    "styleganv": DetectorSpec(
        "styleganv", "i3d_torchscript.pt", preprocess_styleganv,
        "StyleGAN-V TorchScript I3D (tf.hub port), 400-d features before softmax; frames short side->224 bilinear + "
        "centre crop 224, [-1,1]; called with rescale=False, resize=True, return_features=True"),
    "videogpt": DetectorSpec(
        "videogpt", "i3d_pretrained_400.pt", preprocess_videogpt,
        "VideoGPT/TATS PyTorch I3D (i3d_pretrained_400.pt), 400 logits averaged over time; frames resized directly "
        "to 224x224 bilinear, 2x/255-1"),
    "videomae": DetectorSpec(
        "videomae", "videomae-v2-g-ssv2", lambda frames: frames,  # VideoMAEFeatures preprocesses from its config
        "content-debiased FVD (songweige/content-debiased-fvd): VideoMAE-v2 fc_norm(mean of patch tokens), first 16 "
        "frames in [0,1] resized to 224x224 bilinear"),
}


def detector_unavailable(name: str) -> str | None:
    """Why detector `name` cannot run here (its weight file is absent), or None."""
    if name not in DETECTORS:
        return f"unknown FVD detector {name!r} (known: {', '.join(DETECTORS)})"
    if name == "videomae":
        from harness.metrics.cdfvd import videomae_unavailable

        return videomae_unavailable()
    spec = DETECTORS[name]
    return None if find_weight(spec.weight) else missing_message(spec.weight)


def feature_extractor(name: str, device: str | torch.device = "cpu", batch_size: int = 4):
    """The loaded extractor of detector `name`: a callable uint8 clips -> float64 features, with `.sha256`."""
    if name == "videomae":
        from harness.metrics.cdfvd import VideoMAEFeatures

        return VideoMAEFeatures(None, device, batch_size)
    return I3DFeatures(name, device, batch_size)


class I3DFeatures:
    """A loaded detector: uint8 clips in, one 400-d float64 feature row per clip out."""

    def __init__(self, name: str, device: str | torch.device = "cpu", batch_size: int = 4):
        from harness.metrics.i3d import load_tats_i3d, load_torchscript_i3d
        from harness.weights import require_weight

        self.spec = DETECTORS[name]
        self.path = require_weight(self.spec.weight)
        self.sha256 = weight_sha256(self.path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        if name == "styleganv":
            self.model = load_torchscript_i3d(self.path, self.device)
        else:
            self.model = load_tats_i3d(self.path, self.device)

    @property
    def name(self) -> str:
        return self.spec.name

    @torch.no_grad()
    def __call__(self, frames) -> np.ndarray:
        """uint8 (B, T, H, W, 3) clips -> float64 (B, 400) features."""
        out = []
        for s in range(0, len(frames), self.batch_size):
            x = self.spec.preprocess(torch.as_tensor(frames[s:s + self.batch_size]).to(self.device))
            if self.spec.name == "styleganv":
                y = self.model(x, rescale=False, resize=True, return_features=True)
            else:
                y = self.model(x)
            out.append(y.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 400))


@dataclass
class FVD:
    """torchmetrics-style accumulator: `update(real, fake)` with uint8 clips, `compute()` for the distance. Only the
    running statistics are kept (memory O(d²)), unless `keep_features` (needed for a bootstrap interval)."""

    extractor: Callable[[object], np.ndarray]
    keep_features: bool = False
    real: FeatureStats = field(default_factory=FeatureStats)
    fake: FeatureStats = field(default_factory=FeatureStats)
    real_features: list[np.ndarray] = field(default_factory=list)
    fake_features: list[np.ndarray] = field(default_factory=list)

    def update(self, real=None, fake=None) -> None:
        for clips, stats, kept in ((real, self.real, self.real_features), (fake, self.fake, self.fake_features)):
            if clips is None or len(clips) == 0:
                continue
            feats = self.extractor(clips)
            stats.update(feats)
            if self.keep_features:
                kept.append(feats)

    def compute(self) -> FrechetResult:
        return frechet_from_stats(self.real, self.fake)
