"""LFQ, lookup-free quantization (MAGVIT-v2), as re-implemented by Open-MAGVIT2 (`lookup_free_quantize.py`).

* q = sign(z) in {-1, +1}^k with z > 0 -> +1 (z = 0 -> -1, as the reference's `torch.where(x > 0, 1, -1)`),
  straight-through: z + sg(q - z).
* Index = Σ_i [q_i > 0] 2^i: bit i has weight 2^i, LSB-first (the reference's mask is `2 ** arange(k)`).
* Entropy loss E_x[H(p(c|z))] - H(E_x[p(c|z)]) with p(c|z) = softmax_c(2 <z, c> / τ) over ALL 2^k codes, τ = 0.01
  (inverse temperature 100), both weights 1, the codebook entropy written -Σ p̄ log(p̄ + 1e-5) as the reference.
  The reference materializes the N x 2^k logits. Here the same numbers come from the exact factorization of that
  softmax: per token it is a product of per-bit Bernoullis with p(bit i = 1) = sigmoid(4 z_i / τ), so the per-token
  entropy is a sum of binary entropies, and the batch average p̄ (which does NOT factorize) is accumulated exactly
  as Σ_n P_head(n)ᵀ P_tail(n) over two halves of the bits, in token chunks: N·2^k multiply-adds and O(2^k) memory
  instead of N·2^k·k and O(N·2^k). `lfq_entropy_reference` is the direct form (tests check they agree).
* Commitment MSE(z, sg(q)) (Open-MAGVIT2 weighs it 0.25 and the entropy term 0.1: configuration defaults here).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.base import CodeLevel
from models.baselines.tokenizers.base import LatentQuantizer, channels_last, straight_through, thermometer_init
from models.tokenizer.binary import from_bits
from models.tokenizer.quantizer import QuantizerOutput

CODEBOOK_EPS = 1e-5  # Open-MAGVIT2's eps in log(avg_probs + eps)


def all_codes(k: int, device=None) -> torch.Tensor:
    """(2^k, k) codebook {-1, +1}^k, row i = the code of LSB-first index i."""
    idx = torch.arange(2 ** k, device=device)
    return (((idx.unsqueeze(-1) >> torch.arange(k, device=device)) & 1) * 2 - 1).float()


def lfq_entropy_reference(z: torch.Tensor, inv_temperature: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(E_x[H(p(c|z))], H(E_x[p(c|z)])) for z (N, k), with the full N x 2^k softmax as Open-MAGVIT2 computes it.
    Memory N·2^k: for tests and small k."""
    logits = 2 * z.float() @ all_codes(z.shape[-1], z.device).T
    probs = torch.softmax(logits * inv_temperature, -1)
    log_probs = torch.log_softmax(logits * inv_temperature, -1)
    sample = -(probs * log_probs).sum(-1).mean()
    avg = probs.mean(0)
    return sample, -(avg * torch.log(avg + CODEBOOK_EPS)).sum()


def _group_probs(l1: torch.Tensor, l0: torch.Tensor) -> torch.Tensor:
    """(n, g) per-bit log p(1), log p(0) -> (n, 2^g) probabilities of every code of the g bits (LSB-first)."""
    g = l1.shape[-1]
    bits = ((torch.arange(2 ** g, device=l1.device).unsqueeze(-1) >> torch.arange(g, device=l1.device)) & 1).float()
    return torch.exp(l0.sum(-1, keepdim=True) + (l1 - l0) @ bits.T)


def lfq_entropy(z: torch.Tensor, inv_temperature: float = 100.0,
                chunk_elements: int = 2 ** 22) -> tuple[torch.Tensor, torch.Tensor]:
    """The same two entropies as `lfq_entropy_reference`, computed exactly through the per-bit factorization (see
    the module docstring); differentiable. z: (N, k) with k <= 26."""
    n, k = z.shape
    if k > 26:
        raise ValueError(f"a full-codebook entropy over 2^{k} codes is too large; use k <= 26")
    a = 4.0 * inv_temperature * z.float()
    l1, l0 = F.logsigmoid(a), F.logsigmoid(-a)
    sample = -(l1.exp() * l1 + l0.exp() * l0).sum(-1).mean()
    head = k // 2  # bits [0, head) and [head, k): p̄ = mean_n P_head(n) ⊗ P_tail(n)
    step = max(1, chunk_elements // (2 ** max(head, k - head)))
    avg = z.new_zeros(2 ** (k - head), 2 ** head, dtype=torch.float32)
    for s in range(0, n, step):
        ph = _group_probs(l1[s:s + step, :head], l0[s:s + step, :head])
        pt = _group_probs(l1[s:s + step, head:], l0[s:s + step, head:])
        avg = avg + pt.T @ ph  # index = tail * 2^head + head: LSB-first over all k bits
    avg = avg.reshape(-1) / n
    return sample, -(avg * torch.log(avg + CODEBOOK_EPS)).sum()


class LFQ(LatentQuantizer):
    bit_order = "lsb"

    def __init__(self, in_channels: int, bits: int = 16, inv_temperature: float = 100.0,
                 stride: tuple[int, int, int] = (4, 8, 8)):
        super().__init__(in_channels, bits, stride)
        self.bits = int(bits)
        self.inv_temperature = float(inv_temperature)

    def quantize_z(self, z: torch.Tensor) -> QuantizerOutput:
        q = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        value = straight_through(z, q)
        losses = {"commitment": F.mse_loss(z, q)}
        if self.training:
            sample, codebook = lfq_entropy(channels_last(z).reshape(-1, self.bits), self.inv_temperature)
            losses.update(entropy=sample - codebook, sample_entropy=sample.detach(),
                          codebook_entropy=codebook.detach())
        else:
            losses["entropy"] = z.new_zeros(())
        return QuantizerOutput(value, [self.level(z, value, stage_codes=[q])], losses)

    def dequantize(self, codes: list[CodeLevel]) -> torch.Tensor:
        return from_bits(codes[0].bits)

    @torch.no_grad()
    def structured_init(self, latent: torch.Tensor) -> None:
        thermometer_init(self.project_in)

    @staticmethod
    def max_entropy(bits: int) -> float:
        return bits * math.log(2.0)
