"""FSQ, finite scalar quantization (Mentzer et al. 2023, Appendix A.1), with the levels of the Cosmos discrete video
tokenizers (8, 8, 8, 5, 5, 5: 64,000 codes).

Each of the d = len(levels) projected channels is bounded, z -> tanh(z + shift) · half_l - offset with
half_l = (L - 1)(1 - ε)/2, offset = 0.5 for even L (0 for odd), shift = tan(offset / half_l), ε = 1e-3 (the paper's
code), rounded with a straight-through estimator and divided by L // 2, so channel i takes L_i values in [-1, 1].
Index = Σ_i digit_i · Π_{j<i} L_j with digit_i = round value + L_i // 2 in [0, L_i): mixed radix, channel 0 least
significant (the paper's `_basis`). No auxiliary losses. Bits per cell: the fixed-length code of ceil(log2 Π L_i)
bits (16 for 64,000 codes; the information content is log2 64000 = 15.97 bits).
"""
from __future__ import annotations

import math

import torch

from models.base import CodeLevel
from models.baselines.tokenizers.base import LatentQuantizer, channels_first, channels_last, straight_through
from models.tokenizer.quantizer import QuantizerOutput

EPS = 1e-3


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return straight_through(x, torch.round(x))


class FSQ(LatentQuantizer):
    bit_order = "msb"  # unused: index codes

    def __init__(self, in_channels: int, levels: list[int] | tuple[int, ...] = (8, 8, 8, 5, 5, 5),
                 stride: tuple[int, int, int] = (4, 8, 8)):
        levels = [int(v) for v in levels]
        if any(v < 2 for v in levels):
            raise ValueError(f"FSQ levels must be >= 2, got {levels}")
        super().__init__(in_channels, len(levels), stride)
        self.levels = levels
        lv = torch.tensor(levels, dtype=torch.float64)
        half_l = (lv - 1) * (1 - EPS) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        self.register_buffer("_half_l", half_l.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", torch.tan(offset / half_l).float(), persistent=False)
        self.register_buffer("_half_width", (lv // 2).float(), persistent=False)
        self.register_buffer("_basis", torch.cumprod(torch.tensor([1] + levels[:-1]), 0), persistent=False)
        self.codebook_size = int(math.prod(levels))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) channels-last values -> bounded values whose rounding has L_i levels per channel."""
        return torch.tanh(z + self._shift) * self._half_l - self._offset

    def code_space(self, z: torch.Tensor) -> torch.Tensor:
        return channels_first(self.bound(channels_last(z)) / self._half_width)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., d) quantized values in [-1, 1] -> (...) int64 indices."""
        digits = torch.round(codes * self._half_width + self._half_width).long()
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(...) indices -> (..., d) quantized values."""
        indices = indices.to(self._basis.device).long()
        lv = torch.tensor(self.levels, device=indices.device)
        digits = (indices.unsqueeze(-1) // self._basis) % lv
        return (digits.float() - self._half_width) / self._half_width

    def quantize_z(self, z: torch.Tensor) -> QuantizerOutput:
        q = round_ste(self.bound(channels_last(z))) / self._half_width
        idx = self.codes_to_indices(q.detach())
        value = channels_first(q)
        level = self.level(z, value, indices=[idx], codebook_size=self.codebook_size)
        losses = {}
        if self.training:
            losses["batch_codes"] = torch.tensor(float(torch.unique(idx).numel()))
        return QuantizerOutput(value, [level], losses)

    def dequantize(self, codes: list[CodeLevel]) -> torch.Tensor:
        return channels_first(self.indices_to_codes(codes[0].indices))

    @torch.no_grad()
    def structured_init(self, latent: torch.Tensor) -> None:
        """Channels 0-2 read the three colours (gain 1.5: the bound's range covers most levels for colours in
        [-1, 1]), the others colour differences."""
        w = self.project_in.weight
        w.zero_()
        self.project_in.bias.zero_()
        for i in range(self.code_dim):
            if i < 3:
                w[i, i, 0, 0, 0] = 1.5
            else:
                a, b = (i - 3) % 3, (i - 2) % 3
                w[i, a, 0, 0, 0], w[i, b, 0, 0, 0] = 1.5, -1.5
