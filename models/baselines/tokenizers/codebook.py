"""A learned codebook with nearest-neighbour lookup: the piece VQ (one stage) and RVQ (several) are made of.

* Lookup: argmin_i ||x - e_i||² ("euclidean", VQ-VAE / VQGAN) or argmax_i <x/|x|, e_i/|e_i|> ("cosine", the
  l2-normalized codes of ViT-VQGAN / improved VQGAN: inputs and codes are compared and returned on the unit sphere).
  Distances are computed in token chunks, so a 2^16 codebook never needs an N x 2^16 matrix at once.
* Updates: "ema" (VQ-VAE-2 / Sonnet `VectorQuantizerEMA`): N_i <- γ N_i + (1-γ) n_i, m_i <- γ m_i + (1-γ) Σ x,
  Laplace-smoothed N_i <- (N_i + ε) / (n + Kε) n, e_i = m_i / N_i, γ = 0.99, ε = 1e-5; the codebook is a buffer
  and the only loss is the commitment. "loss" (VQ-VAE / VQGAN): the codebook is a parameter trained by
  ||sg(x) - e||² beside the commitment β ||x - sg(e)||².
* Dead-code restarts (Jukebox, SoundStream): every code counts the training steps since it was last chosen; codes
  idle for `dead_after` steps are re-initialized from features of the current batch (drawn without replacement;
  at most as many codes as the batch has features, the longest idle first), their EMA statistics reset to one
  observation. Under DDP the counts and sums are all-reduced and restarts use rank 0's features.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

CHUNK_ELEMENTS = 2 ** 24  # at most this many distances at once


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def nearest(x: torch.Tensor, codebook: torch.Tensor, cosine: bool = False) -> torch.Tensor:
    """Index (N,) of the nearest code for each row of x (N, d); ties go to the lowest index (torch.argmin)."""
    if cosine:
        x, codebook = F.normalize(x, dim=-1), F.normalize(codebook, dim=-1)
    e2 = (codebook ** 2).sum(-1)
    step = max(1, CHUNK_ELEMENTS // codebook.shape[0])
    out = []
    for s in range(0, x.shape[0], step):
        xs = x[s:s + step]
        out.append((e2 - 2 * xs @ codebook.T).argmin(-1))  # ||x||² is the same for every code
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


class Codebook(nn.Module):
    def __init__(self, size: int, dim: int, distance: str = "euclidean", update: str = "ema", decay: float = 0.99,
                 eps: float = 1e-5, dead_after: int = 50):
        super().__init__()
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be 'euclidean' or 'cosine', got {distance!r}")
        if update not in ("ema", "loss"):
            raise ValueError(f"update must be 'ema' or 'loss', got {update!r}")
        self.size, self.dim = int(size), int(dim)
        self.distance, self.update = distance, update
        self.decay, self.eps, self.dead_after = float(decay), float(eps), int(dead_after)
        init = torch.randn(self.size, self.dim) / self.dim ** 0.5
        if update == "ema":
            self.register_buffer("embed", init)
            self.register_buffer("ema_count", torch.ones(self.size))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)
        self.register_buffer("idle", torch.zeros(self.size, dtype=torch.long))  # steps since last chosen

    @property
    def cosine(self) -> bool:
        return self.distance == "cosine"

    def vectors(self) -> torch.Tensor:
        """The codes as the lookup returns them (unit-normalized for cosine)."""
        return F.normalize(self.embed, dim=-1) if self.cosine else self.embed

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.cosine else x

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        return nearest(x.detach(), self.embed.detach(), self.cosine)

    def embedding(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices.long(), self.vectors())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """x (N, d) -> (codes (N, d) without straight-through, indices (N,), {"commitment", "codebook"}).
        In training mode the EMA statistics and dead codes are updated after the lookup."""
        x = self.prepare(x)
        idx = self.lookup(x)
        q = self.embedding(idx)
        losses = {"commitment": F.mse_loss(x, q.detach()),
                  "codebook": F.mse_loss(x.detach(), q) if self.update == "loss" else x.new_zeros(())}
        if self.training:
            with torch.no_grad():
                counts = torch.bincount(idx, minlength=self.size).to(x.dtype)
                if _distributed():
                    torch.distributed.all_reduce(counts)
                if self.update == "ema":
                    self._ema_update(x.detach(), idx, counts)
                losses["restarted"] = torch.tensor(float(self._restart_dead(x.detach(), counts)))
        return q, idx, losses

    # -- training-time codebook maintenance --------------------------------------------------------------------
    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        """counts: how often each code was chosen in this step (over all ranks)."""
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, x)
        if _distributed():
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.size * self.eps) * n
        self.embed.copy_(self.ema_sum / smoothed.unsqueeze(-1))

    @torch.no_grad()
    def _restart_dead(self, x: torch.Tensor, counts: torch.Tensor) -> int:
        """Restart the codes idle longest (ties: lowest index), as many as the batch has features. The choice
        depends only on the all-reduced counts, so every DDP rank restarts the same codes, with rank 0's
        features."""
        self.idle.add_(1)
        self.idle[counts > 0] = 0
        if self.dead_after <= 0:
            return 0
        dead = torch.nonzero(self.idle >= self.dead_after).squeeze(-1)
        n = min(len(dead), x.shape[0])
        if n == 0:
            return 0
        dead = dead[torch.argsort(self.idle[dead], descending=True, stable=True)[:n]]
        new = x[torch.randperm(x.shape[0], device=x.device)[:n]].contiguous()
        if _distributed():
            torch.distributed.broadcast(new, 0)
        self.embed.data[dead] = new
        if self.update == "ema":
            self.ema_sum[dead] = new
            self.ema_count[dead] = 1.0
        self.idle[dead] = 0
        return n

    @torch.no_grad()
    def set_codes(self, codes: torch.Tensor) -> None:
        """Replace the codebook (structured initialization), resetting statistics to one observation per code."""
        self.embed.data.copy_(codes)
        if self.update == "ema":
            self.ema_sum.copy_(codes)
            self.ema_count.fill_(1.0)
        self.idle.zero_()


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None,
           cosine: bool = False) -> torch.Tensor:
    """k centres of x (N, d) by Lloyd's algorithm from a random draw; when k > N the draw repeats rows and adds a
    small jitter (1% of the data's spread), and no iterations are run (there are too few points to move k codes)."""
    n = x.shape[0]
    if k > n:
        picks = torch.randint(n, (k,), generator=generator)
        jitter = torch.randn(k, x.shape[1], generator=generator) * 0.01 * x.std(0, keepdim=True)
        return x[picks] + jitter
    centres = x[torch.randperm(n, generator=generator)[:k]].clone()
    for _ in range(iters):
        idx = nearest(x, centres, cosine)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).unsqueeze(-1).to(x.dtype)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return centres
