"""The Wan-2.1-architecture causal 3D VAE (diffusers' `AutoencoderKLWan`) as a backbone that exposes intermediate
encoder features ("taps") for pyramid quantizers.

Why not call `AutoencoderKLWan.encode`: it returns only the final latent. The taps must be read inside the encoder
while keeping its causal chunked semantics exactly (diffusers 0.3x `_encode`): frame 0 alone, then chunks of 4 frames,
every causal conv reading the last 2 frames of the previous chunk from a feature cache, and the temporal
down-sampling convs (`WanResample.time_conv`) running only from the second chunk on. Without the cache the encoder
would not down-sample time at all. `encode_taps` re-runs the encoder's own modules in that order and records the
output of each stage; the "latent" tap is bit-identical to `AutoencoderKLWan.encode(x).latent_dist.mode()`.

Tap names, for the release configuration (base_dim 96, dim_mult [1,2,4,4], temperal_downsample [F,T,T]):
    stage0  after stage 0 (2 res blocks + spatial /2)           96 ch   T frames        H/2
    stage1  after stage 1 (+ spatial /2, temporal /2)           192 ch  1+(T-1)/2       H/4
    stage2  after stage 2 (+ spatial /2, temporal /2)           384 ch  1+(T-1)/4       H/8
    stage3  after stage 3 (no down-sampling)                    384 ch  1+(T-1)/4       H/8
    mid     after the mid block (res, attention, res)           384 ch  1+(T-1)/4       H/8
    latent  posterior mean: norm, SiLU, conv_out, quant_conv    z_dim   1+(T-1)/4       H/8
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import MissingDataError

CACHE_T = 2  # frames of the previous chunk a causal conv keeps (diffusers' CACHE_T)
TAP_ORDER = ("stage0", "stage1", "stage2", "stage3", "mid", "latent")


@dataclass
class BackboneConfig:
    base_dim: int = 96
    z_dim: int = 16
    dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    temperal_downsample: list[bool] = field(default_factory=lambda: [False, True, True])
    decoder_base_dim: int | None = None

    def diffusers_kwargs(self) -> dict:
        return {"base_dim": self.base_dim, "z_dim": self.z_dim, "dim_mult": list(self.dim_mult),
                "num_res_blocks": self.num_res_blocks, "temperal_downsample": list(self.temperal_downsample),
                "decoder_base_dim": self.decoder_base_dim, "attn_scales": []}


class WithBackbone:
    """Dict round trip and overrides for a tokenizer configuration dataclass holding a `backbone: BackboneConfig`;
    backbone fields may also be given flat (`--model-arg base_dim=32`)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        import dataclasses

        d = dict(d)
        bb_fields = {f.name for f in dataclasses.fields(BackboneConfig)}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)} - bb_fields
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        bb = dict(d.pop("backbone", None) or {})
        for name in bb_fields & set(d):
            bb[name] = d.pop(name)
        return cls(backbone=BackboneConfig(**bb), **d)

    def replace(self, **overrides):
        d = self.to_dict()
        for k, v in overrides.items():
            (d["backbone"] if k in d["backbone"] else d)[k] = v
        return type(self).from_dict(d)


def load_vae(path: str | Path):
    """An `AutoencoderKLWan` from a local diffusers folder (config.json + diffusion_pytorch_model.safetensors), e.g.
    the `vae/` folder of Wan-AI/Wan2.1-T2V-1.3B-Diffusers or Wan2.2-I2V-A14B-Diffusers. Never downloads."""
    from diffusers import AutoencoderKLWan

    path = Path(path).expanduser()
    if not (path / "config.json").exists():
        raise MissingDataError(f"no Wan VAE at {path}: expected a diffusers folder with config.json and "
                               "diffusion_pytorch_model.safetensors (e.g. the vae/ folder of "
                               "huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers)")
    return AutoencoderKLWan.from_pretrained(str(path), local_files_only=True, use_safetensors=None)


class WanBackbone(nn.Module):
    """Encoder taps and causal chunked decoding around a diffusers `AutoencoderKLWan`."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self.z_dim = int(cfg.z_dim)
        self.temporal_factor = 2 ** sum(bool(t) for t in cfg.temperal_downsample)
        self.spatial_factor = 2 ** (len(cfg.dim_mult) - 1)
        self._stage_ends = self._find_stage_ends()
        dims = [cfg.base_dim * m for m in cfg.dim_mult]
        self.tap_channels = {f"stage{i}": d for i, d in enumerate(dims)}
        self.tap_channels.update(mid=dims[-1], latent=self.z_dim)
        t_down = list(cfg.temperal_downsample) + [False]
        self.tap_strides: dict[str, tuple[int, int, int]] = {}
        ft = fs = 1
        for i in range(len(dims)):
            if i < len(dims) - 1:
                fs *= 2
                ft *= 2 if t_down[i] else 1
            self.tap_strides[f"stage{i}"] = (ft, fs, fs)
        self.tap_strides["mid"] = self.tap_strides["latent"] = (ft, fs, fs)

    @classmethod
    def from_config(cls, config: BackboneConfig, vae_path: str | None = None) -> "WanBackbone":
        if vae_path:
            return cls(load_vae(vae_path))
        from diffusers import AutoencoderKLWan

        return cls(AutoencoderKLWan(**config.diffusers_kwargs()))

    def config_dict(self) -> dict:
        c = self.vae.config
        return asdict(BackboneConfig(c.base_dim, c.z_dim, list(c.dim_mult), c.num_res_blocks,
                                     list(c.temperal_downsample), c.decoder_base_dim))

    # -- structure -------------------------------------------------------------------------------------------
    def _find_stage_ends(self) -> list[int]:
        """Index (exclusive) in encoder.down_blocks where each stage ends: after each down-sampler (Wan 2.1 layout,
        a flat list) or after each residual down block (Wan 2.2 layout)."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanResample, WanResidualDownBlock

        blocks = list(self.vae.encoder.down_blocks)
        if blocks and isinstance(blocks[0], WanResidualDownBlock):
            return list(range(1, len(blocks) + 1))
        ends = [i + 1 for i, b in enumerate(blocks) if isinstance(b, WanResample) and b.mode != "none"]
        ends.append(len(blocks))
        return ends

    def _count_causal_convs(self, module: nn.Module) -> int:
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

        return sum(isinstance(m, WanCausalConv3d) for m in module.modules())

    # -- encoding --------------------------------------------------------------------------------------------
    @staticmethod
    def _cached_conv(conv, x, cache, idx):
        """One causal conv with diffusers' caching rule (keep the last CACHE_T frames, padded from the cache)."""
        i = idx[0]
        cache_x = x[:, :, -CACHE_T:].clone()
        if cache_x.shape[2] < 2 and cache[i] is not None:
            cache_x = torch.cat([cache[i][:, :, -1:].to(cache_x.device), cache_x], dim=2)
        out = conv(x, cache[i])
        cache[i] = cache_x
        idx[0] += 1
        return out

    def _encode_chunk(self, x, cache, want: set[str]) -> dict[str, torch.Tensor]:
        enc = self.vae.encoder
        idx = [0]
        out: dict[str, torch.Tensor] = {}
        h = self._cached_conv(enc.conv_in, x, cache, idx)
        start = 0
        for s, end in enumerate(self._stage_ends):
            for layer in enc.down_blocks[start:end]:
                h = layer(h, feat_cache=cache, feat_idx=idx)
            start = end
            if f"stage{s}" in want:
                out[f"stage{s}"] = h
        h = enc.mid_block(h, feat_cache=cache, feat_idx=idx)
        if "mid" in want:
            out["mid"] = h
        if "latent" in want:
            h = enc.nonlinearity(enc.norm_out(h))
            out["latent"] = self._cached_conv(enc.conv_out, h, cache, idx)
        return out

    def pad_input(self, video: torch.Tensor) -> torch.Tensor:
        """Replicate-pad frames to 1 + 4k and height/width to multiples of the spatial factor (cropped after
        decoding), so every clip size is accepted."""
        b, c, t, h, w = video.shape
        ft, fs = self.temporal_factor, self.spatial_factor
        pt = (-(t - 1)) % ft
        if pt:
            video = torch.cat([video, video[:, :, -1:].expand(b, c, pt, h, w)], 2)
        ph, pw = (-h) % fs, (-w) % fs
        if ph or pw:
            t2 = video.shape[2]
            video = F.pad(video.reshape(b, c * t2, h, w), (0, pw, 0, ph), mode="replicate").reshape(
                b, c, t2, h + ph, w + pw)
        return video

    def encode_taps(self, video: torch.Tensor, taps: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Features at the requested taps for a (B, 3, 1+4k, H, W) clip in [-1, 1] (see the module docstring)."""
        unknown = set(taps) - set(TAP_ORDER)
        if unknown:
            raise ValueError(f"unknown taps {sorted(unknown)}; known: {TAP_ORDER}")
        t = video.shape[2]
        ft = self.temporal_factor
        if (t - 1) % ft:
            raise ValueError(f"clip has {t} frames; the causal encoder needs 1 + {ft}k (use pad_input)")
        want = set(taps)
        cache: list = [None] * self._count_causal_convs(self.vae.encoder)
        chunks = [video[:, :, :1]] + [video[:, :, 1 + ft * i:1 + ft * (i + 1)] for i in range((t - 1) // ft)]
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in want}
        for chunk in chunks:
            for k, v in self._encode_chunk(chunk, cache, want).items():
                parts[k].append(v)
        out = {k: torch.cat(v, 2) for k, v in parts.items()}
        if "latent" in out:  # quant_conv is a 1x1x1 conv: applied once over all frames, as diffusers does
            out["latent"] = self.vae.quant_conv(out["latent"])[:, :self.z_dim]
        return out

    # -- decoding --------------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Latent (B, z_dim, t', h', w') -> video (B, 3, 1 + 4(t'-1), 8h', 8w'), one latent frame at a time through
        the decoder's feature cache (diffusers `_decode`). `clamp=False` keeps gradients outside [-1, 1] in
        training."""
        dec = self.vae.decoder
        x = self.vae.post_quant_conv(z)
        cache: list = [None] * self._count_causal_convs(dec)
        frames = []
        for i in range(x.shape[2]):
            frames.append(dec(x[:, :, i:i + 1], feat_cache=cache, feat_idx=[0], first_chunk=(i == 0)))
        out = torch.cat(frames, 2)
        return out.clamp(-1.0, 1.0) if clamp else out

    def latent_frames(self, num_frames: int) -> int:
        return 1 + (num_frames - 1) // self.temporal_factor


def describe_config(vae) -> str:
    return json.dumps({k: v for k, v in dict(vae.config).items() if not k.startswith("_")}, default=str)
