"""The global autoregressive objective over the token hierarchy (paper §3.2.2, L_AR = -Σ_l log p(q(l) | q(<l), e_t)).

The paper runs the sequence [text, <SOI>, level-1 tokens, <Q-SEP>, ..., level-L tokens] through its VLM (Qwen2.5-VL,
36 layers). Here a small causal transformer stands in for it, trained jointly:
  * visual tokens enter as their ±1 bit vectors through a linear layer (no lookup table), so the straight-through
    gradient of L_AR reaches the quantizer, as the paper's objective intends;
  * the next token is predicted by k factorized per-bit heads (log p(code) = Σ_j log p(bit_j)), so 2^16 and larger
    codebooks cost k logits, not 2^k;
  * positions are Fourier features of each token's normalized (t, y, x) in the clip plus a level embedding, and
    every input also carries the position of the token it must predict next;
  * a level with more than `window` tokens contributes a random sub-window (the same normalized region at every
    level), which bounds the sequence in training; sampling uses a sliding key/value cache of the same length.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.tokenizer.quantizer import TextContext

FOURIER = 6  # frequencies per coordinate


def fourier_positions(coords: torch.Tensor) -> torch.Tensor:
    """(..., 3) normalized coordinates in [0, 1] -> (..., 3 * 2 * FOURIER) sin/cos features."""
    freqs = (2.0 ** torch.arange(FOURIER, device=coords.device, dtype=coords.dtype)) * math.pi
    x = coords.unsqueeze(-1) * freqs
    return torch.cat([x.sin(), x.cos()], -1).flatten(-2)


def grid_coords(t: int, h: int, w: int, device=None) -> torch.Tensor:
    """(t*h*w, 3) cell centres in [0, 1], raster order (t, h, w)."""
    axes = [(torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n for n in (t, h, w)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _cached_mask(n: int, total: int, prefix: int, prefix_mask: torch.Tensor | None, device) -> torch.Tensor | None:
    """Attention mask of n new positions over `total` cached + new keys: causal among the new ones, never a padded
    prefix (text) key (prefix_mask (B, prefix), True = real), always the position itself (so no row is empty)."""
    mask = None
    if n > 1:
        mask = torch.ones(n, total, dtype=torch.bool, device=device).tril(total - n)
    if prefix_mask is None:
        return mask
    keys = torch.ones(prefix_mask.shape[0], total, dtype=torch.bool, device=device)
    keys[:, :prefix] = prefix_mask
    keys = keys[:, None, None, :]  # (B, 1, 1, total): broadcast over heads and new positions
    if mask is None:
        return keys
    own = torch.zeros(n, total, dtype=torch.bool, device=device)
    own[torch.arange(n), total - n + torch.arange(n)] = True
    return (mask & keys) | own


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: dict | None = None,
                keep: int | None = None, prefix: int = 0, prefix_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        else:  # incremental decoding: n new positions attend to the cache (a prefix plus a sliding window)
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            if keep is not None and k.shape[2] > prefix + keep:
                k = torch.cat([k[:, :, :prefix], k[:, :, -keep:]], 2)
                v = torch.cat([v[:, :, :prefix], v[:, :, -keep:]], 2)
            cache["k"], cache["v"] = k, v
            mask = _cached_mask(n, k.shape[2], prefix, prefix_mask, x.device)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class HierarchyPrior(nn.Module):
    def __init__(self, bits: int, text_dim: int, levels: int, dim: int = 128, layers: int = 2, heads: int = 4,
                 window: int = 256):
        super().__init__()
        self.bits, self.levels, self.window = bits, levels, window
        self.text_in = nn.Linear(text_dim, dim)
        self.bit_in = nn.Linear(bits, dim)
        self.pos_in = nn.Linear(6 * FOURIER, dim)
        self.next_pos_in = nn.Linear(6 * FOURIER, dim)
        self.level_emb = nn.Embedding(levels, dim)
        self.next_level_emb = nn.Embedding(levels, dim)
        self.soi = nn.Parameter(torch.randn(dim) * 0.02)
        self.sep = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, bits)

    # -- sequence construction -------------------------------------------------------------------------------
    def _windows(self, shapes: list[tuple[int, int, int]], generator: torch.Generator | None,
                 centred: bool = False) -> list[torch.Tensor]:
        """Indices (raster order) of the tokens of each level inside one random (or the centred) normalized region,
        so that no level exceeds `window` tokens; the whole grid when it fits."""
        biggest = max(math.prod(s) for s in shapes)
        frac = min(1.0, (self.window / biggest) ** (1 / 3))
        if frac >= 1:
            u = torch.zeros(3)
        else:
            u = torch.full((3,), (1 - frac) / 2) if centred else torch.rand(3, generator=generator) * (1 - frac)
        out = []
        for (t, h, w) in shapes:
            ranges = []
            for n, lo in zip((t, h, w), u.tolist()):
                a = min(int(math.floor(lo * n)), n - 1)
                b = max(a + 1, min(n, int(math.ceil((lo + frac) * n))))
                ranges.append(torch.arange(a, b))
            tt, hh, ww = torch.meshgrid(*ranges, indexing="ij")
            idx = (tt * h * w + hh * w + ww).reshape(-1)
            if idx.numel() > self.window:
                idx = idx[:self.window]
            out.append(idx)
        return out

    def _visual_inputs(self, values: list[torch.Tensor], windows: list[torch.Tensor]):
        """Per level: bit inputs (B, n, k), target bits (B, n, k), positions (n, 3)."""
        rows = []
        for lv, (v, idx) in enumerate(zip(values, windows)):
            b, k, t, h, w = v.shape
            flat = v.flatten(2).transpose(1, 2)[:, idx.to(v.device)]  # (B, n, k) straight-through ±1 values
            coords = grid_coords(t, h, w, v.device)[idx.to(v.device)]
            rows.append((flat, coords, lv))
        return rows

    def _embed(self, text: TextContext, rows) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Input embeddings of the whole sequence, and for each position the (level, coords) of the next token."""
        b = text.tokens.shape[0]
        dev = text.tokens.device
        parts = [self.text_in(text.tokens), self.soi.expand(b, 1, -1)]
        for i, (flat, coords, lv) in enumerate(rows):
            e = self.bit_in(flat) + self.pos_in(fourier_positions(coords)) + self.level_emb.weight[lv]
            parts.append(e)
            if i < len(rows) - 1:
                parts.append(self.sep.expand(b, 1, -1))
        x = torch.cat(parts, 1)
        # next-token conditioning: the position just before each visual token carries that token's position
        nxt = torch.zeros(x.shape[1], self.next_pos_in.out_features, device=dev)
        start = text.tokens.shape[1] + 1  # first visual token of level 1
        for i, (flat, coords, lv) in enumerate(rows):
            n = flat.shape[1]
            nxt[start - 1:start - 1 + n] += self.next_pos_in(fourier_positions(coords)) + self.next_level_emb.weight[lv]
            start += n + 1
        return x + nxt, start, text.tokens.shape[1]

    def _run(self, x: torch.Tensor, text_len: int, text_mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        # padded text tokens are never attended to
        pad = torch.ones(x.shape[0], n, dtype=torch.bool, device=x.device)
        pad[:, :text_len] = text_mask
        mask = causal.unsqueeze(0) & pad.unsqueeze(1)
        mask = mask | torch.eye(n, dtype=torch.bool, device=x.device).unsqueeze(0)
        for blk in self.blocks:
            x = blk(x, mask=mask.unsqueeze(1))
        return self.head(self.norm(x))

    def loss(self, text: TextContext, values: list[torch.Tensor], generator: torch.Generator | None = None):
        """-log p(token) in nats per bit (factorized bits: the mean of the per-bit BCE), averaged over the predicted
        visual tokens; multiply by k for nats per token."""
        shapes = [tuple(v.shape[2:]) for v in values]
        rows = self._visual_inputs(values, self._windows(shapes, generator))
        x, _, text_len = self._embed(text, rows)
        logits = self._run(x, text_len, text.mask)
        preds, targets = [], []
        pos = text_len  # the <SOI> position predicts the first level-1 token
        for flat, _, _ in rows:
            n = flat.shape[1]
            preds.append(logits[:, pos:pos + n])
            targets.append((flat.detach() > 0).float())
            pos += n + 1
        pred, target = torch.cat(preds, 1), torch.cat(targets, 1)
        return F.binary_cross_entropy_with_logits(pred, target)

    # -- sampling ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, text: TextContext, shapes: list[tuple[int, int, int]], temperature: float = 1.0,
               top_k: int | None = None, generator: torch.Generator | list[torch.Generator] | None = None
               ) -> list[torch.Tensor]:
        """Codes (B, k, t, h, w) of every level, sampled token by token (raster order, level 1 first), the whole
        batch at once. The last level (the one the decoder reads) is sampled in full (±1 everywhere); each earlier
        level, as in training, only over the centred normalized region that keeps it within `window` tokens (0
        outside it: not sampled), so a 256x256 clip costs ~5k steps, not the ~300k of every level in full.

        `generator`: one per item (each item's draws then depend on its own generator only, so a video does not
        change with what else is in the batch) or one shared by the batch. Padded text positions are masked out of
        the key/value cache, so an item's codes do not depend on the other prompts' lengths either (up to float
        rounding in the batched products)."""
        b = text.tokens.shape[0]
        if isinstance(generator, (list, tuple)) and len(generator) != b:
            raise ValueError(f"{len(generator)} generators for a batch of {b}")
        dev = text.tokens.device
        caches = [dict() for _ in self.blocks]
        prefix = text.tokens.shape[1] + 1
        prefix_mask = torch.cat([text.mask.bool(), torch.ones(b, 1, dtype=torch.bool, device=dev)], 1)
        keep = self.window * len(shapes)
        x = torch.cat([self.text_in(text.tokens), self.soi.expand(b, 1, -1)], 1)
        out_levels = []
        regions = self._windows(shapes[:-1], None, centred=True) if len(shapes) > 1 else []
        for lv, (t, h, w) in enumerate(shapes):
            idx = regions[lv] if lv < len(regions) else torch.arange(t * h * w)
            coords = grid_coords(t, h, w, dev)[idx.to(dev)]
            pos_e = self.pos_in(fourier_positions(coords))
            nxt_e = self.next_pos_in(fourier_positions(coords)) + self.next_level_emb.weight[lv]
            codes = torch.zeros(b, t * h * w, self.bits, device=dev)
            for j, cell in enumerate(idx.tolist()):
                inp = x.clone()
                inp[:, -1] = inp[:, -1] + nxt_e[j]
                logits = self._step(inp, caches, prefix, keep, prefix_mask)
                q = self._sample_bits(logits[:, -1], temperature, top_k, generator)
                codes[:, cell] = q
                x = (self.bit_in(q) + pos_e[j] + self.level_emb.weight[lv]).unsqueeze(1)
            out_levels.append(codes.transpose(1, 2).reshape(b, self.bits, t, h, w))
            if lv < len(shapes) - 1:
                self._step(x, caches, prefix, keep, prefix_mask)
                x = self.sep.expand(b, 1, -1)
        return out_levels

    def _step(self, x, caches, prefix: int, keep: int, prefix_mask: torch.Tensor | None = None) -> torch.Tensor:
        for blk, cache in zip(self.blocks, caches):
            x = blk(x, cache=cache, keep=keep, prefix=prefix, prefix_mask=prefix_mask)
        return self.head(self.norm(x))

    @staticmethod
    def _sample_bits(logits: torch.Tensor, temperature: float, top_k: int | None,
                     generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
        """Sample ±1 bits from factorized logits (B, k), with one generator per row or one for all. With top_k,
        sampling is restricted to the 2^m codes that differ from the most likely code only in its
        m = ceil(log2 top_k) least confident bits."""
        if temperature <= 0:
            return torch.where(logits >= 0, 1.0, -1.0)
        p = torch.sigmoid(logits / temperature)
        if isinstance(generator, (list, tuple)):
            u = torch.stack([torch.rand(p.shape[1:], generator=g) for g in generator]).to(p.device)
        else:
            u = torch.rand(p.shape, generator=generator).to(p.device)
        bits = torch.where(u < p, 1.0, -1.0)
        if top_k is not None and top_k >= 1:
            m = min(logits.shape[-1], int(math.ceil(math.log2(max(top_k, 1)))))
            conf = logits.abs()
            fixed = torch.ones_like(conf, dtype=torch.bool)
            if m > 0:
                least = conf.topk(m, dim=-1, largest=False).indices
                fixed.scatter_(-1, least, False)
            bits = torch.where(fixed, torch.where(logits >= 0, 1.0, -1.0), bits)
        return bits
