"""The generic tokenizer: backbone taps -> quantizer -> post-quantization projection -> backbone decoder.

PyraTok (models/pyratok/model.py) and the single-quantizer baselines are this model with a different quantizer, so
a comparison changes only the quantizer. Subclasses add their own training terms in `training_losses`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.tokenizer.backbone import WanBackbone
from models.tokenizer.quantizer import Quantizer, QuantizerOutput, TextContext
from models.tokenizer.recon_loss import LPIPSLoss, recon_losses


class TokenizerModel(nn.Module):
    def __init__(self, backbone: WanBackbone, quantizer: Quantizer):
        super().__init__()
        self.backbone = backbone
        self.quantizer = quantizer
        z = backbone.z_dim
        self.post_quant = nn.Identity() if quantizer.out_channels == z else nn.Conv3d(quantizer.out_channels, z, 1)
        self.lpips: LPIPSLoss | None = None

    def quantize(self, video: torch.Tensor, text: TextContext | None = None) -> QuantizerOutput:
        """video (B, 3, 1+4k, H, W) with H, W multiples of 8 (see WanBackbone.pad_input)."""
        feats = self.backbone.encode_taps(video, self.quantizer.taps)
        return self.quantizer([feats[t] for t in self.quantizer.taps], text)

    def decode_value(self, value: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        return self.backbone.decode(self.post_quant(value), clamp=clamp)

    def forward(self, video: torch.Tensor, text: TextContext | None = None,
                clamp: bool = False) -> tuple[torch.Tensor, QuantizerOutput]:
        q = self.quantize(video, text)
        return self.decode_value(q.quantized, clamp=clamp), q

    # -- training ----------------------------------------------------------------------------------------------
    def recon_terms(self, recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return recon_losses(recon, target, self.lpips)
