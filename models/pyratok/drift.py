"""A frozen image model as PyraTok's drift reference (paper Appendix D: L_drift against a frozen DINOv3).

`drift_reference=<folder>` names a local transformers vision backbone with patch tokens (DINOv3 `DINOv3ViTModel`,
DINOv2 `Dinov2Model`, with or without registers; any AutoModel whose output has `last_hidden_state` and whose
config has `patch_size` and `hidden_size`). It never downloads. Each frame is resized so the patch grid is exactly
the encoder's mid-block grid (H/8 x W/8: the image model sees 8·patch/8 = `patch` pixels per cell), normalized with
the folder's `preprocessor_config.json` mean/std (ImageNet's when absent), and its patch tokens are averaged over the
frames of each latent step as the causal encoder groups them (frame 0 alone, then groups of 4). The encoder's
mid-block features are projected to the image model's width by a trained 1x1x1 conv (`PyraTokModel.drift_proj`,
as REPA projects diffusion features onto DINO's) before the channel-softmax KL.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import MissingDataError
from models.tokenizer.quantizer import causal_pool

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def reference_width(path: str | Path) -> int:
    """The hidden size of a local image model, read from its config.json alone (no weights loaded)."""
    cfg = Path(path).expanduser() / "config.json"
    if not cfg.is_file():
        raise MissingDataError(f"drift reference: no image model at {cfg.parent} (config.json missing); give a local "
                               "transformers folder, e.g. facebook/dinov3-vitb16-pretrain-lvd1689m or "
                               "facebook/dinov2-base from the Hugging Face Hub, downloaded beforehand")
    width = json.loads(cfg.read_text()).get("hidden_size")
    if not isinstance(width, int):
        raise ValueError(f"drift reference {cfg}: no integer hidden_size")
    return width


class ImageModelReference(nn.Module):
    """Frozen patch features of a local image model on the encoder's mid grid: `features(video, grid)`."""

    def __init__(self, path: str | Path, frames_per_batch: int = 16):
        super().__init__()
        from transformers import AutoModel

        path = Path(path).expanduser()
        self.width = reference_width(path)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval().requires_grad_(False)
        self.patch = int(self.model.config.patch_size)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        proc = path / "preprocessor_config.json"
        if proc.is_file():
            d = json.loads(proc.read_text())
            mean, std = d.get("image_mean", mean), d.get("image_std", std)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.frames_per_batch = frames_per_batch

    @torch.no_grad()
    def features(self, video: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, width, t, h, w) for a clip (B, 3, T, H, W) in [-1, 1] and the target grid (t, h, w)."""
        b, _, frames, _, _ = video.shape
        t, h, w = grid
        x = video.movedim(2, 1).reshape(b * frames, 3, *video.shape[-2:])
        x = F.interpolate((x + 1) / 2, size=(h * self.patch, w * self.patch), mode="bilinear", antialias=True,
                          align_corners=False)
        x = (x - self.mean) / self.std
        out = []
        for chunk in x.split(self.frames_per_batch):
            tokens = self.model(pixel_values=chunk).last_hidden_state
            out.append(tokens[:, tokens.shape[1] - h * w:])  # patch tokens follow the class and register tokens
        patches = torch.cat(out).view(b, frames, h, w, self.width).permute(0, 4, 1, 2, 3)
        return causal_pool(patches.float(), (t, h, w))
