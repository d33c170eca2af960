"""Tiny random video VAEs of the real diffusers classes, saved with `save_pretrained` (config.json + safetensors), so
the adapters load them on their real path. A few thousand parameters each, with the real factors of each family:
4x8x8 (CogVideoX, Wan, HunyuanVideo) and 8x32x32 (LTX-Video)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "cogvideox-vae": ("AutoencoderKLCogVideoX", dict(block_out_channels=(4, 4, 4, 4), latent_channels=4,
                                                     layers_per_block=1, norm_num_groups=2)),
    "wan-vae": ("AutoencoderKLWan", dict(base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                         latents_mean=[0.0] * 4, latents_std=[1.0] * 4)),
    "ltx-vae": ("AutoencoderKLLTXVideo", dict(latent_channels=4, block_out_channels=(8, 8, 8, 8),
                                              decoder_block_out_channels=(8, 8, 8, 8),
                                              layers_per_block=(1, 1, 1, 1, 1),
                                              decoder_layers_per_block=(1, 1, 1, 1, 1))),
    "hunyuan-vae": ("AutoencoderKLHunyuanVideo", dict(latent_channels=4, block_out_channels=(4, 4, 4, 4),
                                                      layers_per_block=1, norm_num_groups=2)),
}


def save_tiny_vae(name: str, folder: Path, seed: int = 0, **overrides: Any) -> Path:
    """Write the tiny `name` VAE (random weights from `seed`) as a diffusers folder; returns the folder."""
    import diffusers

    class_name, config = TINY[name]
    torch.manual_seed(seed)
    module = getattr(diffusers, class_name)(**{**config, **overrides})
    module.save_pretrained(str(folder), safe_serialization=True)
    return folder
