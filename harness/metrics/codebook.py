"""Codebook usage over a whole evaluation set, per level: how much of the code space a tokenizer really uses.

Measured over every code of every clip (not over a fixed-size buffer, which under-reports usage), from sparse
per-clip histograms. For binary codes the per-bit balance is also given; for large code lengths (2^k far above the
number of codes seen) the fraction used is bounded by the sample size, and entropy per bit is the meaningful figure.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from models.base import CodeLevel


def level_histogram(level: CodeLevel, i: int) -> dict[str, np.ndarray]:
    """Sparse histogram (unique codes, counts) of sample i of a batch, plus per-bit ones for binary codes."""
    idx = level.as_indices()[i].reshape(-1)
    uniq, counts = torch.unique(idx, return_counts=True)
    out = {"codes": uniq.cpu().numpy().astype(np.int64), "counts": counts.cpu().numpy().astype(np.int64)}
    if level.bits is not None:
        out["bit_ones"] = level.bits[i].reshape(-1, level.bits.shape[-1]).long().sum(0).cpu().numpy()
    return out


def usage(histograms: list[dict[str, np.ndarray]], codebook_size: int) -> dict[str, float]:
    """Usage statistics of one level from the per-sample sparse histograms."""
    codes = np.concatenate([h["codes"] for h in histograms]) if histograms else np.zeros(0, np.int64)
    counts = np.concatenate([h["counts"] for h in histograms]) if histograms else np.zeros(0, np.int64)
    if codes.size == 0:
        return {}
    uniq, inv = np.unique(codes, return_inverse=True)
    total_counts = np.bincount(inv, weights=counts).astype(np.float64)
    n = float(total_counts.sum())
    p = total_counts / n
    entropy = float(-(p * np.log2(p)).sum())
    k = math.log2(codebook_size)
    out = {
        "used_fraction": len(uniq) / codebook_size,
        "used_codes": float(len(uniq)),
        "entropy_bits": entropy,
        "entropy_ratio": entropy / k if k > 0 else math.nan,
        "perplexity": 2.0 ** entropy,
        "tokens": n,
        # the most codes this many tokens could use: usage is bounded by the sample size for large codebooks
        "max_possible_fraction": min(1.0, n / codebook_size),
    }
    if all("bit_ones" in h for h in histograms):
        ones = np.sum([h["bit_ones"] for h in histograms], axis=0).astype(np.float64)
        balance = ones / n
        out["bit_balance_min"] = float(balance.min())
        out["bit_balance_max"] = float(balance.max())
        q = np.clip(balance, 1e-12, 1 - 1e-12)
        out["bit_entropy_mean"] = float(np.mean(-(q * np.log2(q) + (1 - q) * np.log2(1 - q))))
    return out
