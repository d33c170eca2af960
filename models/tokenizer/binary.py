"""Binary (sign) quantization onto the codebook {-1, +1}^k: the primitives LaPQ, LFQ and BSQ are built from.

Conventions (see docs/pyratok.md): a value z >= 0 maps to +1 (bit 1), z < 0 to -1 (bit 0), as in PyraTok's LaPQ.py;
bits are stored as (..., k) vectors and read MSB-first (bit 0 has weight 2^(k-1)) unless a quantizer says otherwise
(Open-MAGVIT2's LFQ is LSB-first).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sign_ste(z: torch.Tensor) -> torch.Tensor:
    """sign(z) in {-1, +1} (z >= 0 -> +1) in the forward pass, identity gradient in the backward pass."""
    q = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
    return z + (q - z).detach()


def to_bits(q: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """±1 values -> uint8 {0, 1}, with the code dimension moved last: (B, k, t, h, w) -> (B, t, h, w, k)."""
    return (q.detach() > 0).to(torch.uint8).movedim(dim, -1)


def from_bits(bits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """uint8 {0, 1} (B, t, h, w, k) -> float ±1 (B, k, t, h, w)."""
    return (bits.float() * 2 - 1).movedim(-1, dim)


def bits_to_indices(bits: torch.Tensor, order: str = "msb") -> torch.Tensor:
    """(..., k) bits -> int64 indices; "msb": bit 0 has weight 2^(k-1); "lsb": bit 0 has weight 1."""
    k = bits.shape[-1]
    exps = torch.arange(k - 1, -1, -1) if order == "msb" else torch.arange(k)
    return (bits.long() * (2 ** exps).to(bits.device)).sum(-1)


def indices_to_bits(indices: torch.Tensor, k: int, order: str = "msb") -> torch.Tensor:
    """int indices -> (..., k) uint8 bits in the given order (the inverse of bits_to_indices)."""
    exps = torch.arange(k - 1, -1, -1) if order == "msb" else torch.arange(k)
    return ((indices.long().unsqueeze(-1) >> exps.to(indices.device)) & 1).to(torch.uint8)


def bit_probabilities(z: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    """p(bit = 1 | z) of the soft assignment to the codebook {-1,+1}^k: softmax_c(<z, c> / tau) factorizes over
    bits into sigmoid(2 z_j / tau) (LaPQ.py's form), so per-bit probabilities give the exact 2^k-way distribution
    without building it. (Open-MAGVIT2's LFQ uses softmax_c(2<z, c> / tau), i.e. sigmoid(4 z_j / tau).)"""
    return torch.sigmoid((2.0 * inv_temperature * z.float()).clamp(-30.0, 30.0))


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def factorized_entropy_loss(z: torch.Tensor, inv_temperature: float = 100.0, dim: int = 1) -> torch.Tensor:
    """log K + E_x[H(p(c|z))] - H(E_x[p(c|z)]) with both entropies factorized per bit (LaPQ's low-memory form).

    The first term makes each token commit to one code; the second spreads the batch over the codebook. It is
    >= 0 and is 0 exactly when every token is deterministic and every bit is used half of the time.
    """
    zf = z.movedim(dim, -1).reshape(-1, z.shape[dim])
    p = bit_probabilities(zf, inv_temperature)
    per_token = _binary_entropy(p).sum(-1).mean()
    codebook = _binary_entropy(p.mean(0)).sum()
    return math.log(2.0) * zf.shape[-1] + per_token - codebook


def commitment_loss(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """MSE(z, sg(q)): keeps the continuous values near the codebook (VQ-VAE's commitment term)."""
    return F.mse_loss(z, q.detach())


def bernoulli_kl(logits_p: torch.Tensor, logits_q: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """KL(P || Q) between two factorized distributions over {-1,+1}^k given per-bit logits, per bit: the KL of the
    two 2^k-way soft assignments (the sum over bits) divided by k, averaged over the other positions. Per-bit units
    keep the term's scale independent of the codebook size (10 to 20 bits in the ablations)."""
    lp1, lp0 = F.logsigmoid(logits_p), F.logsigmoid(-logits_p)
    lq1, lq0 = F.logsigmoid(logits_q), F.logsigmoid(-logits_q)
    p1 = lp1.exp()
    kl = p1 * (lp1 - lq1) + (1 - p1) * (lp0 - lq0)
    return kl.mean()


def residual_sign_quantize(z: torch.Tensor, stages: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Residual binary quantization as in LaPQ.py: stage i quantizes the residual to sign(r) and contributes
    2^-i sign(r); the residual is updated with the detached contribution.

    Returns (quantized sum with straight-through gradients, the ±1 codes of each stage (straight-through too, so a
    loss on the codes reaches z), commitment loss summed over stages). With one stage this is plain sign
    quantization.
    """
    residual = z
    total = torch.zeros_like(z)
    codes, commit = [], z.new_zeros(())
    for i in range(stages):
        q = sign_ste(residual)
        codes.append(q)
        commit = commit + commitment_loss(residual, q)
        scaled = q * (2.0 ** -i)
        total = total + scaled
        residual = residual - scaled.detach()
    return total, codes, commit


def dequantize_stages(codes: list[torch.Tensor]) -> torch.Tensor:
    """Σ_i 2^-i q_i: the value the decoder sees, rebuilt from the ±1 codes of the residual stages."""
    out = torch.zeros_like(codes[0])
    for i, q in enumerate(codes):
        out = out + q * (2.0 ** -i)
    return out
