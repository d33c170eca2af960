"""What the single-level baseline quantizers share: they read the backbone's latent (the posterior mean), project it
with a 1x1x1 conv to their code space, quantize that grid, and give the decoder the quantized value (through the
model's post-quantization projection).

The split `project` -> `quantize_z` lets tiled inference blend the continuous values of overlapping tiles and
quantize once (see `tiled_latent`), and lets `features` expose the pre-quantization grid.
"""
from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn as nn

from models.base import CodeLevel
from models.tokenizer.quantizer import QuantizedLevel, Quantizer, QuantizerOutput, TextContext

LEVEL = "latent"  # the one code level's name in Tokens.levels (residual stages: "latent.s0", "latent.s1", ...)


class LatentQuantizer(Quantizer):
    """Base class: `project_in` (latent channels -> code_dim), then a family-specific `quantize_z`."""

    taps = ("latent",)

    def __init__(self, in_channels: int, code_dim: int, stride: tuple[int, int, int] = (4, 8, 8)):
        super().__init__()
        self.code_dim = int(code_dim)
        self.out_channels = self.code_dim
        self.stride = tuple(stride)
        self.level_names = [LEVEL]
        self.project_in = nn.Conv3d(in_channels, self.code_dim, 1)

    def project(self, latent: torch.Tensor) -> torch.Tensor:
        return self.project_in(latent)

    def forward(self, features: list[torch.Tensor], text: TextContext | None = None) -> QuantizerOutput:
        return self.quantize_z(self.project(features[0]))

    @abstractmethod
    def quantize_z(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize a (B, code_dim, t, h, w) grid; `levels` holds one QuantizedLevel named LEVEL."""

    @abstractmethod
    def dequantize(self, codes: list[CodeLevel]) -> torch.Tensor:
        """The decoder input (B, code_dim, t, h, w) rebuilt from the codes alone (Tokens.levels)."""

    def code_space(self, z: torch.Tensor) -> torch.Tensor:
        """The continuous values as the quantizer compares them with its codes (e.g. unit-normalized for BSQ)."""
        return z

    @abstractmethod
    @torch.no_grad()
    def structured_init(self, latent: torch.Tensor) -> None:
        """Set project_in (and a codebook) so that, on the area-downsample backbone start, the codes carry the
        latent's colour channels 0-2 (see models/tokenizer/structured_init.py); `latent` is a calibration batch."""

    def level(self, z: torch.Tensor, value: torch.Tensor, **kw) -> QuantizedLevel:
        return QuantizedLevel(LEVEL, z, value, stride=self.stride, bit_order=self.bit_order, **kw)


def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q in the forward pass, identity gradient to z; exactly q when no gradient is needed (so the decoder input of
    `encode` is bit-identical to the one `dequantize` rebuilds from the codes)."""
    return z + (q - z).detach() if z.requires_grad and torch.is_grad_enabled() else q


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, t, h, w) -> (B, t, h, w, C)."""
    return x.movedim(1, -1)


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """(B, t, h, w, C) -> (B, C, t, h, w)."""
    return x.movedim(-1, 1)


THRESHOLDS = (-0.6, -0.3, 0.0, 0.3, 0.6)


@torch.no_grad()
def thermometer_init(conv: nn.Conv3d, scale: float = 1.0) -> None:
    """Output j = scale * (colour c - threshold t) for 3 colours x 5 thresholds (a thermometer code of the colour
    after sign quantization, as PyraTok's structured init of its last level); spare outputs take colour
    differences."""
    w = conv.weight
    w.zero_()
    conv.bias.zero_()
    j = 0
    for c in range(3):
        for t in THRESHOLDS:
            if j < w.shape[0]:
                w[j, c, 0, 0, 0] = scale
                conv.bias[j] = -scale * t
                j += 1
    for r in range(j, w.shape[0]):
        a, b = r % 3, (r + 1) % 3
        w[r, a, 0, 0, 0], w[r, b, 0, 0, 0] = scale, -scale
