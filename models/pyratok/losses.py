"""PyraTok's training terms beyond reconstruction (paper Eq. 2 and Appendix D), with the choices the paper leaves
open made explicit.

Soft assignments. The KL terms of Eq. 2 need distributions. A code-space vector v (a token's pre-sign value, or a
caption projected by `text_to_code`) is read as its soft assignment to the shared codebook,
p(c | v) ∝ exp(<v, c> / tau) over c in {-1,+1}^k, which factorizes into independent bits with logits 2 v / tau;
every KL below is the exact KL of these 2^k-way distributions computed per bit and reported per bit (divided by k,
so weights do not depend on the codebook size); the alignment terms are averaged over the aligned levels.

  hierarchical consistency   KL(p(.|z(l)) || p(.|pool(z(l-1))))  per token, l >= 2 (pool: causal_pool to l's grid)
  text-conditioned alignment "paper":        E_i KL(p(.|z_i) || sg p(.|e_t))  (literal Eq. 2, term 4)
                             "contrastive":  KL(t || p) between soft assignments of each clip to a set of captions
                                             (its own, the batch's, and text-only negatives): p from the clip's
                                             tokens (text-conditioned pooling of token-caption cosines, or their
                                             mean: `align_pooling`), t from the
                                             frozen encoder's caption-caption similarity (the stop-gradient target)
  text-codebook alignment    KL(mean_i p(.|z_i) || sg p(.|e_t)): the clip's codebook usage against the caption's
                             assignment over the codebook (term 5; per clip, factorized)
  drift                      KL(softmax(f_ref / T) || softmax(f / T)) over channels, per position, of the adapted
                             encoder's features against a frozen reference encoder's (DINOv3 in the paper)

Why "contrastive" is the default: in the literal formulation every term stops the gradient at e_t, so nothing trains
the text projection and the per-token KL pulls every token (background included) towards one caption code, which
fights reconstruction and carries no contrast between captions. See docs/pyratok.md for the measured probe numbers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.tokenizer.binary import bernoulli_kl
from models.tokenizer.quantizer import QuantizedLevel, causal_pool


def code_logits(v: torch.Tensor, temperature: float) -> torch.Tensor:
    return 2.0 * v / temperature


def hierarchical_kl(levels: list[QuantizedLevel], temperature: float) -> torch.Tensor:
    total = levels[0].z.new_zeros(())
    for prev, cur in zip(levels[:-1], levels[1:]):
        pooled = causal_pool(prev.z, tuple(cur.z.shape[2:]))
        total = total + bernoulli_kl(code_logits(cur.z, temperature), code_logits(pooled, temperature))
    return total


def paper_text_alignment(z: torch.Tensor, e_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """E_i KL(p(.|z_i) || sg p(.|e_t)) for clips with a caption: z (B, k, t, h, w), e_t (B, k)."""
    target = code_logits(e_t.detach(), temperature)[:, :, None, None, None].expand_as(z)
    return bernoulli_kl(code_logits(z, temperature), target)


def text_codebook_alignment(z: torch.Tensor, e_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(usage || sg p(.|e_t)) per clip, factorized: usage_j = mean over tokens of p(bit_j = 1 | z_i)."""
    p_bits = torch.sigmoid(code_logits(z, temperature)).flatten(2).mean(-1).clamp(1e-5, 1 - 1e-5)  # (B, k)
    q_bits = torch.sigmoid(code_logits(e_t.detach(), temperature)).clamp(1e-5, 1 - 1e-5)
    kl = p_bits * (p_bits / q_bits).log() + (1 - p_bits) * ((1 - p_bits) / (1 - q_bits)).log()
    return kl.mean()


def clip_caption_scores(z: torch.Tensor, e: torch.Tensor, pool_temperature: float = 0.1,
                        pooling: str = "text") -> torch.Tensor:
    """(B, N) clip-caption scores. pooling "text": for each caption, the cosine of every token with it, pooled over
    tokens by a softmax of those cosines (text-conditioned pooling: the tokens that match the caption decide);
    "mean": the cosine of the tokens' mean with the caption, as the classification, retrieval and TAL tasks score."""
    if pooling == "mean":
        return F.normalize(z.flatten(2).mean(-1), dim=-1) @ F.normalize(e, dim=-1).t()
    if pooling != "text":
        raise ValueError(f"align_pooling must be 'text' or 'mean', got {pooling!r}")
    u = F.normalize(z.flatten(2), dim=1)  # (B, k, n)
    cos = torch.einsum("bkn,ck->bcn", u, F.normalize(e, dim=-1))  # (B, N, n)
    w = torch.softmax(cos / pool_temperature, dim=-1)
    return (w * cos).sum(-1)


def contrastive_text_alignment(z: torch.Tensor, e_all: torch.Tensor, own: torch.Tensor, raw_all: torch.Tensor,
                               temperature: float, target_temperature: float = 0.05,
                               pooling: str = "text") -> torch.Tensor:
    """KL(t || p) of each captioned clip's soft assignment over N captions.

    z (B, k, t, h, w) code values of B captioned clips; e_all (N, k) captions in code space (trainable projection);
    own (B,) index of each clip's caption among the N; raw_all (N, D) the frozen encoder's sentence embeddings,
    whose cosine similarities give the soft targets (identical or near-identical captions share the mass)."""
    scores = clip_caption_scores(z, e_all, pooling=pooling) / temperature
    raw = F.normalize(raw_all, dim=-1)
    target = torch.softmax((raw[own] @ raw.t()) / target_temperature, dim=-1).detach()
    return F.kl_div(F.log_softmax(scores, -1), target, reduction="batchmean")


def drift_kl(features: torch.Tensor, reference: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(ref / T) || softmax(f / T)) over channels, per position, averaged (reference detached)."""
    f = features.movedim(1, -1).reshape(-1, features.shape[1])
    r = reference.detach().movedim(1, -1).reshape(-1, reference.shape[1])
    return F.kl_div(F.log_softmax(f / temperature, -1), F.log_softmax(r / temperature, -1), reduction="batchmean",
                    log_target=True)


# ---------------------------------------------------------------------------------------------------------------
def mask_video(video: torch.Tensor, generator: torch.Generator, frames: float = 0.3, spatial_max: float = 0.5,
               patch: int = 8) -> torch.Tensor:
    """Training-time input masking (paper: 30% of frames + MAE-style spatial masking with a cosine schedule).

    A fraction `frames` of the frames after the first is replaced by the previous kept frame (a masked frame keeps
    no new information, and the causal encoder still sees a plausible clip); then each frame's `patch` x `patch`
    patches are zeroed with a ratio r = spatial_max * cos(pi/2 * u), u ~ U(0, 1) (MaskGIT's cosine schedule, capped).
    The loss still compares the reconstruction with the unmasked clip."""
    b, c, t, h, w = video.shape
    out = video.clone()
    n_mask = int(round(frames * (t - 1)))
    for i in range(b):
        if n_mask > 0:
            idx = 1 + torch.randperm(t - 1, generator=generator)[:n_mask]
            for f in sorted(idx.tolist()):
                out[i, :, f] = out[i, :, f - 1]
    u = torch.rand(b, generator=generator)
    ratio = spatial_max * torch.cos(math.pi / 2 * u)
    gh, gw = -(-h // patch), -(-w // patch)
    keep = torch.rand(b, 1, t, gh, gw, generator=generator) >= ratio.view(b, 1, 1, 1, 1)
    keep = keep.repeat_interleave(patch, 3).repeat_interleave(patch, 4)[..., :h, :w]
    return out * keep.to(out.dtype)
