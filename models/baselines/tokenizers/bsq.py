"""BSQ, binary spherical quantization (Zhao et al. 2024), as `bsq-vit/transcoder/models/quantizer/bsq.py`.

* The projected latent is put on the unit sphere, u = z / ||z|| (the model's `l2_norm`), then q = sign(u) / √k
  with u > 0 -> +1; straight-through on u: (u + sg(sign(u) - u)) / √k.
* Index MSB-first: basis 2^(k-1) ... 1.
* Entropy penalty ζ (γ0 H_sample - γ H_codebook) / invT with soft assignments per GROUP of g bits: for each group,
  p = softmax_c(2 invT <u_g, c> / √k) over its 2^g sub-codes; the codebook entropy is approximated by the sum over
  groups of the entropy of the batch-averaged group distribution; the per-sample entropy is the sum of the groups'
  entropies ('group') or, analytically, of per-bit binary entropies with p = sigmoid(-4 invT u / √k)
  ('analytical'); the two are equal in exact arithmetic, since the group softmax factorizes over bits. Entropies
  use log(p + 1e-8) as the reference's `get_entropy`. Reference defaults: γ0 = γ = ζ = 1, invT = 1, g = 9
  (k = 18); here g = 8 so that 16 bits split into two groups.
* Commitment β E ||sg(q) - u||² (β = 0 in the released configurations).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.base import CodeLevel
from models.baselines.tokenizers.base import LatentQuantizer, channels_last, straight_through, thermometer_init
from models.tokenizer.binary import from_bits
from models.tokenizer.quantizer import QuantizerOutput

ENTROPY_EPS = 1e-8


def _entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return -(p * torch.log(p + ENTROPY_EPS)).sum(dim)


def group_codebook(g: int, device=None) -> torch.Tensor:
    """(2^g, g) ±1 sub-codes, row i = the MSB-first code of i."""
    idx = torch.arange(2 ** g, device=device)
    return (((idx.unsqueeze(-1) >> torch.arange(g - 1, -1, -1, device=device)) & 1) * 2 - 1).float()


def bsq_entropy(u: torch.Tensor, group_size: int, inv_temperature: float = 1.0,
                persample: str = "group") -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample entropy, grouped codebook entropy) for unit vectors u (N, k); see the module docstring."""
    n, k = u.shape
    if k % group_size:
        raise ValueError(f"BSQ: {k} bits do not split into groups of {group_size}")
    scale = 1.0 / math.sqrt(k)
    groups = u.float().reshape(n, k // group_size, group_size)
    logits = 2 * inv_temperature * torch.einsum("ngc,dc->ngd", groups, group_codebook(group_size, u.device) * scale)
    prob = logits.softmax(-1)
    if persample == "analytical":
        p = torch.sigmoid(-4 * u.float() * scale * inv_temperature)
        sample = _entropy(torch.stack([p, 1 - p], -1)).sum(-1).mean()
    elif persample == "group":
        sample = _entropy(prob).sum(-1).mean()
    else:
        raise ValueError(f"persample must be 'group' or 'analytical', got {persample!r}")
    codebook = _entropy(prob.mean(0)).sum()
    return sample, codebook


class BSQ(LatentQuantizer):
    bit_order = "msb"

    def __init__(self, in_channels: int, bits: int = 16, group_size: int = 8, inv_temperature: float = 1.0,
                 persample: str = "group", gamma0: float = 1.0, gamma: float = 1.0, zeta: float = 1.0,
                 stride: tuple[int, int, int] = (4, 8, 8)):
        super().__init__(in_channels, bits, stride)
        if bits % group_size:
            raise ValueError(f"BSQ: bits ({bits}) must be a multiple of group_size ({group_size})")
        self.bits, self.group_size = int(bits), int(group_size)
        self.inv_temperature, self.persample = float(inv_temperature), persample
        self.gamma0, self.gamma, self.zeta = float(gamma0), float(gamma), float(zeta)

    def code_space(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=1)

    def quantize_z(self, z: torch.Tensor) -> QuantizerOutput:
        u = self.code_space(z)
        q = torch.where(u > 0, torch.ones_like(u), -torch.ones_like(u))
        value = straight_through(u, q) / math.sqrt(self.bits)
        losses = {"commitment": ((value.detach() - u) ** 2).sum(1).mean()}
        if self.training:
            sample, codebook = bsq_entropy(channels_last(u).reshape(-1, self.bits), self.group_size,
                                           self.inv_temperature, self.persample)
            losses.update(entropy=self.zeta * (self.gamma0 * sample - self.gamma * codebook) / self.inv_temperature,
                          sample_entropy=sample.detach(), codebook_entropy=codebook.detach())
        else:
            losses["entropy"] = z.new_zeros(())
        return QuantizerOutput(value, [self.level(z, value, stage_codes=[q])], losses)

    def dequantize(self, codes: list[CodeLevel]) -> torch.Tensor:
        return from_bits(codes[0].bits) / math.sqrt(self.bits)

    @torch.no_grad()
    def structured_init(self, latent: torch.Tensor) -> None:
        thermometer_init(self.project_in)
