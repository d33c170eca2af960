"""The identity "model": perfect reconstruction at the cost of the raw 24-bit RGB pixels (an upper bound)."""
from __future__ import annotations

import torch

from models.base import RECONSTRUCT, ModelAdapter, ModelMetadata, Tokens


class IdentityAdapter(ModelAdapter):
    capabilities = frozenset({RECONSTRUCT})
    metadata = ModelMetadata("Identity (raw RGB)", family="reference", compression=(1, 1, 1), code_bits=24,
                             discrete=True, source="PyraTok Bench", license="Apache-2.0",
                             notes="returns its input; bits are the uint8 RGB values")

    def encode(self, video: torch.Tensor) -> Tokens:
        b, _, t, h, w = video.shape
        bits = torch.full((b,), 24.0 * t * h * w, dtype=torch.float64)
        return Tokens((t, h, w), bits=bits, payload=video)

    def decode(self, tokens: Tokens) -> torch.Tensor:
        return tokens.payload
