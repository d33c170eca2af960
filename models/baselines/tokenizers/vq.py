"""VQ (VQ-VAE / VQGAN) and RVQ (residual VQ, SoundStream / EnCodec) on the projected latent.

VQ: one codebook of `codebook_size` codes (2^16 by default: 16 bits per latent cell, as a 16-bit binary tokenizer),
straight-through z + sg(q - z), commitment β ||z - sg(q)||² (β = 0.25 by configuration), EMA or loss updates,
euclidean or cosine lookup and dead-code restarts (models/baselines/tokenizers/codebook.py).

RVQ: `stages` codebooks; stage s quantizes the residual r_s = z - Σ_{j<s} q_j (with detached q_j), so each stage
adds detail and the reconstruction error of the sum does not grow with stages (it shrinks while codes are useful).
The decoder reads Σ_s q_s; exact bits per cell = stages x log2(codebook_size). Each stage is its own CodeLevel
("latent.s0", "latent.s1", ...).
"""
from __future__ import annotations

import math

import torch

from models.base import CodeLevel
from models.baselines.tokenizers.base import LatentQuantizer, channels_first, channels_last, straight_through
from models.baselines.tokenizers.codebook import Codebook, kmeans
from models.tokenizer.quantizer import QuantizerOutput


def _check_size(size: int) -> None:
    if size < 2 or size & (size - 1):
        raise ValueError(f"codebook_size must be a power of two >= 2 (exact bits per code), got {size}")


class ResidualVQ(LatentQuantizer):
    """`stages` residual codebooks (stages = 1 is plain VQ)."""

    bit_order = "msb"  # unused: index codes

    def __init__(self, in_channels: int, codebook_size: int = 65536, codebook_dim: int = 8, stages: int = 1,
                 distance: str = "euclidean", update: str = "ema", decay: float = 0.99, dead_after: int = 50,
                 stride: tuple[int, int, int] = (4, 8, 8)):
        super().__init__(in_channels, codebook_dim, stride)
        _check_size(codebook_size)
        if distance == "cosine" and stages > 1:
            raise ValueError("cosine lookup normalizes its input, which residual stages cannot do: use stages=1")
        self.codebook_size, self.stages = int(codebook_size), int(stages)
        self.codebooks = torch.nn.ModuleList(
            Codebook(codebook_size, codebook_dim, distance, update, decay, dead_after=dead_after)
            for _ in range(self.stages))

    @property
    def bits_per_cell(self) -> int:
        return self.stages * int(math.log2(self.codebook_size))

    def code_space(self, z: torch.Tensor) -> torch.Tensor:
        return channels_first(self.codebooks[0].prepare(channels_last(z)))

    def quantize_z(self, z: torch.Tensor) -> QuantizerOutput:
        b, d, t, h, w = z.shape
        x = channels_last(z).reshape(-1, d)
        target = self.codebooks[0].prepare(x)  # what the sum of the stages approximates
        residual, total = x, torch.zeros_like(target)
        indices, commit, codebook, restarted = [], z.new_zeros(()), z.new_zeros(()), 0.0
        for cb in self.codebooks:
            q, idx, losses = cb(residual)
            commit = commit + losses["commitment"]
            codebook = codebook + losses["codebook"]
            restarted += float(losses.get("restarted", 0.0))
            indices.append(idx.reshape(b, t, h, w))
            total = total + q
            residual = target - total.detach()
        value = straight_through(target, total.detach())  # a "loss" codebook learns by its own term only
        value = channels_first(value.reshape(b, t, h, w, d))
        losses = {"commitment": commit / self.stages, "codebook": codebook / self.stages}
        if self.training:
            losses["restarted"] = torch.tensor(restarted)
            losses["batch_codes"] = torch.tensor(float(torch.unique(indices[0]).numel()))
        level = self.level(z, value, indices=indices, codebook_size=self.codebook_size)
        return QuantizerOutput(value, [level], losses)

    def dequantize(self, codes: list[CodeLevel]) -> torch.Tensor:
        if len(codes) != self.stages:
            raise ValueError(f"expected {self.stages} stage code levels, got {len(codes)}")
        total = sum(cb.embedding(c.indices.to(cb.embed.device)) for cb, c in zip(self.codebooks, codes))
        return channels_first(total)

    @torch.no_grad()
    def structured_init(self, latent: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """project_in passes the colour channels and a constant (so cosine lookup keeps brightness); stage 1 is
        initialized by k-means on the calibration features (random features + jitter when the codebook is larger
        than the calibration set), each later stage by k-means on the residuals of the stages before it."""
        w = self.project_in.weight
        w.zero_()
        self.project_in.bias.zero_()
        for c in range(min(3, self.code_dim)):
            w[c, c, 0, 0, 0] = 1.0
        if self.code_dim > 3:
            self.project_in.bias[3] = 1.0
        x = self.codebooks[0].prepare(channels_last(self.project(latent)).reshape(-1, self.code_dim))
        total = torch.zeros_like(x)
        for cb in self.codebooks:
            cb.set_codes(kmeans(x - total, self.codebook_size, generator=generator, cosine=cb.cosine))
            total = total + cb.embedding(cb.lookup(x - total))


class VQ(ResidualVQ):
    def __init__(self, in_channels: int, codebook_size: int = 65536, codebook_dim: int = 8, **kw):
        super().__init__(in_channels, codebook_size, codebook_dim, stages=1, **kw)


class RVQ(ResidualVQ):
    def __init__(self, in_channels: int, codebook_size: int = 256, codebook_dim: int = 8, stages: int = 2, **kw):
        super().__init__(in_channels, codebook_size, codebook_dim, stages=stages, **kw)
