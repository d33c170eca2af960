"""The quantizer interface every tokenizer on the shared backbone implements (LaPQ, and the LFQ/BSQ/VQ/RVQ/FSQ
baselines): `forward(features, text) -> QuantizerOutput(quantized, levels, losses)`.

A quantizer names the backbone taps it reads (`taps`, shallow to deep); single-level quantizers read ("latent",).
`quantized` is what the decoder consumes (through the model's post-quantization projection); `levels` hold the codes
of every level (a pyramid level or a residual stage stack) with their continuous pre-quantization values, so the
model can expose features and count bits; `losses` are the quantizer's own terms (unweighted, named), which the
training loop weighs.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.base import CodeLevel
from models.tokenizer.binary import dequantize_stages, from_bits, to_bits


@dataclass
class TextContext:
    """Text conditioning for a batch, already projected to the model's text width.

    tokens (B, L, D) with mask (B, L) (True = a real token) for cross-attention; pooled (B, D) sentence embeddings;
    has_text (B,) False where the clip had no caption (its tokens are then the learned null token).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    has_text: torch.Tensor


@dataclass
class QuantizedLevel:
    """One level's codes. `z` (B, k, t, h, w) is the continuous value that was quantized, `value` the quantized
    value with straight-through gradients (Σ_i 2^-i q_i over residual stages), `stage_codes` the detached ±1 codes
    of each stage. Binary levels only; index quantizers (VQ, FSQ) fill `indices` instead."""

    name: str
    z: torch.Tensor
    value: torch.Tensor
    stage_codes: list[torch.Tensor] = field(default_factory=list)
    stride: tuple[int, int, int] = (1, 1, 1)
    bit_order: str = "msb"
    indices: list[torch.Tensor] | None = None
    codebook_size: int | None = None

    @property
    def bits_per_cell(self) -> int:
        if self.indices is not None:
            return len(self.indices) * (int(self.codebook_size) - 1).bit_length()
        return sum(c.shape[1] for c in self.stage_codes)

    @property
    def cells(self) -> int:
        return int(self.z.shape[2] * self.z.shape[3] * self.z.shape[4])

    def code_levels(self) -> list[CodeLevel]:
        """One `models.base.CodeLevel` per residual stage (named "<level>" or "<level>.s<i>")."""
        if self.indices is not None:
            return [CodeLevel(self.name if len(self.indices) == 1 else f"{self.name}.s{i}", indices=ix,
                              codebook_size=self.codebook_size) for i, ix in enumerate(self.indices)]
        many = len(self.stage_codes) > 1
        return [CodeLevel(f"{self.name}.s{i}" if many else self.name, bits=to_bits(q), bit_order=self.bit_order)
                for i, q in enumerate(self.stage_codes)]


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor
    levels: list[QuantizedLevel]
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class Quantizer(nn.Module, ABC):
    """Base class. Subclasses set `taps`, `out_channels` and `level_names`, and implement `forward`."""

    taps: tuple[str, ...] = ("latent",)
    out_channels: int
    bit_order: str = "msb"

    @abstractmethod
    def forward(self, features: list[torch.Tensor], text: TextContext | None = None) -> QuantizerOutput:
        """features: the backbone's outputs at `self.taps`, in order."""

    def dequantize(self, codes: list[CodeLevel]) -> torch.Tensor:
        """The decoder input rebuilt from the decoder level's codes (its residual stages, in order): exactly the
        bits that `Tokens.bits` counts. Binary quantizers: Σ_i 2^-i (2 b_i - 1)."""
        return dequantize_stages([from_bits(c.bits) for c in codes])


# ---------------------------------------------------------------------------------------------------------------
def causal_pool(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Resample (B, C, t, h, w) to a coarser causal grid (t', h', w'): frame 0 stays alone and the later frames are
    averaged in groups of (t-1)/(t'-1), as the causal encoder groups them; space is average-pooled. A finer target
    (never needed by LaPQ, whose levels go shallow to deep) is reached by nearest repetition."""
    b, c, t, h, w = x.shape
    t2, h2, w2 = size
    if t2 != t:
        if t2 > 1 and (t - 1) % (t2 - 1) == 0 and t > t2:
            g = (t - 1) // (t2 - 1)
            rest = x[:, :, 1:].reshape(b, c, t2 - 1, g, h, w).mean(3)
            x = torch.cat([x[:, :, :1], rest], 2)
        else:
            x = F.interpolate(x, size=(t2, h, w), mode="nearest")
    if (h2, w2) != (h, w):
        if h % h2 == 0 and w % w2 == 0 and h >= h2:
            x = F.avg_pool3d(x, (1, h // h2, w // w2))
        else:
            x = F.interpolate(x, size=(x.shape[2], h2, w2), mode="nearest")
    return x
