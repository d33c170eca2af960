"""Test generators for the generation tasks (registered by the tests, never built in).

`OracleGenerator` reads the colour, shape, motion and background words of a prompt and renders that scene with
tasks/mini/scenes.py (what the prompt leaves open comes from the seed), the way the mini MSR-VTT videos were made;
it returns its tokens (a palette index and three sign bits per 4x8x8 cell). `NoiseGenerator` draws uniform noise,
implements only the original `generate` request and can encode (so its codebook usage is re-encoded).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from harness.hashing import derive_seed
from models.base import GENERATE, RECONSTRUCT, CodeLevel, GeneratedVideos, ModelAdapter, ModelMetadata, Tokens
from tasks.mini.clips import MOTION_ING
from tasks.mini.scenes import BACKGROUNDS, COLORS, MOTIONS, SHAPES, Scene, random_scene, render

PALETTE = torch.tensor(list(COLORS.values()), dtype=torch.float32)  # (8, 3)
CELL = (4, 8, 8)


def find_phrase(prompt: str, phrases) -> str | None:
    """The phrase of `phrases` that occurs in `prompt` as whole words (the longest, when several do)."""
    words = f" {' '.join(prompt.lower().split())} "
    hits = [p for p in phrases if f" {p} " in words]
    return max(hits, key=len) if hits else None


def prompt_scene(prompt: str, seed: int, num_frames: int, height: int, width: int) -> Scene:
    rng = np.random.default_rng(seed % (2 ** 63))
    motion = find_phrase(prompt, MOTIONS) or {v: k for k, v in MOTION_ING.items()}.get(
        find_phrase(prompt, MOTION_ING.values()) or "")
    scene = random_scene(rng, num_frames, height, width, 8.0, motion=motion,
                         background=find_phrase(prompt, BACKGROUNDS))
    obj = scene.objects[0]
    color, shape = find_phrase(prompt, COLORS), find_phrase(prompt, SHAPES)
    obj = dataclasses.replace(obj, color=color or obj.color, shape=shape or obj.shape)
    return dataclasses.replace(scene, objects=(obj,))


def palette_tokens(video: torch.Tensor) -> Tokens:
    """A 4x8x8 grid of codes: the nearest palette colour of each cell's mean, and its three channel-sign bits."""
    b, _, t, h, w = video.shape
    rgb = (video.float() + 1) * 127.5
    cells = F.avg_pool3d(rgb, CELL, ceil_mode=True)  # (B, 3, t', h', w')
    flat = cells.permute(0, 2, 3, 4, 1)  # (B, t', h', w', 3)
    nearest = torch.cdist(flat.reshape(-1, 3), PALETTE).argmin(-1).reshape(flat.shape[:-1])
    bits = (flat > 127.5).to(torch.uint8)
    levels = [CodeLevel("palette", indices=nearest, codebook_size=len(PALETTE)), CodeLevel("sign", bits=bits)]
    n_codes = sum(lv.num_codes * lv.code_bits for lv in levels)
    return Tokens((t, h, w), levels, bits=torch.full((b,), float(n_codes), dtype=torch.float64))


class OracleGenerator(ModelAdapter):
    capabilities = frozenset({GENERATE})
    metadata = ModelMetadata("Test oracle (renders the prompt's scene)", family="reference", discrete=True,
                             source="tests/generators.py")

    def generation_settings(self) -> dict:
        return {"renderer": "tasks.mini.scenes", "unparsed": "drawn from the seed", "tokens": "palette 4x8x8"}

    def generate_videos(self, prompts, seeds, num_frames, height, width) -> GeneratedVideos:
        frames = np.stack([render(prompt_scene(p, int(s), num_frames, height, width))[0]
                           for p, s in zip(prompts, seeds)])
        video = torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        return GeneratedVideos(video, palette_tokens(video))

    def generate(self, prompts, seed, num_frames, height, width) -> torch.Tensor:
        seeds = [derive_seed(seed, i) for i in range(len(prompts))]
        return self.generate_videos(prompts, seeds, num_frames, height, width).video


class NoiseGenerator(ModelAdapter):
    capabilities = frozenset({GENERATE, RECONSTRUCT})
    metadata = ModelMetadata("Test noise", family="reference", source="tests/generators.py")

    def generate(self, prompts, seed, num_frames, height, width) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        return torch.rand(len(prompts), 3, num_frames, height, width, generator=g) * 2 - 1

    def encode(self, video: torch.Tensor) -> Tokens:
        return palette_tokens(video)

    def decode(self, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError("the test noise generator only encodes (for codebook usage)")


def register() -> None:
    from harness.registry import MODELS

    MODELS.register("test-oracle", OracleGenerator, overwrite=True)
    MODELS.register("test-noise", NoiseGenerator, overwrite=True)
