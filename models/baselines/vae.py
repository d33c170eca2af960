"""The continuous video VAEs of open video generators, through diffusers: CogVideoX, Wan 2.1, LTX-Video, HunyuanVideo.

Each adapter loads the `vae/` folder of the official diffusers repository from a local path
(`--model-arg path=/models/CogVideoX-2b/vae`; default `$PYRATOK_BENCH_WEIGHTS/<repo name>/vae`) with
`from_pretrained(..., local_files_only=True, use_safetensors=True)`: nothing is downloaded, and no pickle is read.

What a reconstruction means here (docs/baselines.md):

* Shapes. Each clip is padded to the next shape the model accepts (models/baselines/padding.py: the last frame
  repeated up to 1 + k*step frames, bottom/right edges replicated or reflected up to a multiple of the spatial
  factor) and the decoded clip is trimmed back, so scores cover exactly the input's pixels. The step is the temporal
  factor, except for CogVideoX, whose diffusers decoder works on pairs of latent frames: with an even number of latent
  frames it returns 4 frames more than were encoded (5 -> 8), so CogVideoX is given 1 + 8k frames.
* Latent. `encode` returns the posterior mode (the mean) unscaled: no `scaling_factor`, no latents mean/std, which
  belong to the diffusion model, not to the autoencoder. `sample=true` draws from the posterior instead, with a seed
  derived from the run's `seed` arg and the clip's own pixels, so a clip's draw never depends on its batch.
* Bits. The latent is continuous: `Tokens.bits` is None and bits per pixel is reported as null with the reason (the
  number of latent values per clip is given instead).
* Tiling. By default the class's own `enable_tiling()` is on; it only changes inputs larger than its tile (e.g.
  256x256 for Wan and HunyuanVideo, 240x360 for CogVideoX-2b, 512x512 for LTX-Video), which are then encoded and
  decoded in overlapping, blended tiles. Tile sizes are model args; `tiling=false` encodes every input whole.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from harness.errors import MissingDataError
from harness.hashing import derive_seed, sha256_file
from harness.video import to_uint8_frames
from harness.weights import weights_dir
from models.base import FEATURES, RECONSTRUCT, ModelAdapter, ModelMetadata, Tokens
from models.baselines.padding import PAD_MODES, pad_video, padded_shape, trim_video

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
# Generic tile args (model args) -> what they mean; each family maps the ones its class supports to enable_tiling().
TILE_ARGS = ("tile_height", "tile_width", "tile_stride_height", "tile_stride_width", "tile_frames",
             "tile_stride_frames")


def loaded_weight_files(folder: Path) -> list[Path]:
    """The safetensors files `from_pretrained` reads from a diffusers model folder (one file, or the shards of an
    index)."""
    index = folder / f"{WEIGHTS_FILE}.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        return [folder / s for s in shards]
    return [folder / WEIGHTS_FILE]


class DiffusersVideoVAE(ModelAdapter):
    """Shared by every family: loading, padding and trimming, tiling, posterior mode or sample, features.

    A family names its diffusers class and official repository and reads its factors from the loaded config.
    """

    capabilities = frozenset({RECONSTRUCT, FEATURES})
    class_name: ClassVar[str]
    repo: ClassVar[str]  # the official diffusers repository on the Hugging Face Hub (documentation only)
    tile_args: ClassVar[tuple[str, ...]] = ()  # which TILE_ARGS the class's enable_tiling understands

    def __init__(self, device="cpu", path: str | None = None, sample: bool = False, seed: int = 0,
                 dtype: str = "float32", tiling: bool = True, spatial_pad: str = "replicate", **args: Any):
        tile = {k: args.pop(k) for k in TILE_ARGS if args.get(k) is not None}
        for k in TILE_ARGS:
            args.pop(k, None)
        if args:
            raise ValueError(f"{type(self).__name__}: unknown model args {', '.join(sorted(args))}")
        unsupported = sorted(set(tile) - set(self.tile_args))
        if unsupported:
            raise ValueError(f"{self.class_name} tiling does not take {', '.join(unsupported)} (it takes "
                             f"{', '.join(self.tile_args)})")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        if spatial_pad not in PAD_MODES:
            raise ValueError(f"spatial_pad {spatial_pad!r}: expected one of {', '.join(PAD_MODES)}")
        super().__init__(device, sample=bool(sample), seed=int(seed), dtype=dtype, tiling=bool(tiling),
                         spatial_pad=spatial_pad, **tile)
        self.sample, self.seed, self.tiling, self.spatial_pad = bool(sample), int(seed), bool(tiling), spatial_pad
        self.dtype = DTYPES[dtype]
        self.folder = self.resolve_folder(path)
        self.module = self._load()
        if self.tiling:
            self.module.enable_tiling(**self.tiling_kwargs(tile))
        self.temporal_factor, self.spatial_factor = self.factors()
        self.frame_step = self.valid_frame_step()
        self.spatial_alignment = self.spatial_factor  # read by the resolution-scaling study
        self.metadata = dataclasses.replace(
            type(self).metadata, compression=(self.temporal_factor, self.spatial_factor, self.spatial_factor),
            latent_channels=self.latent_channels())
        self._hashes: dict[str, str] | None = None

    # -- loading ---------------------------------------------------------------------------------------------
    @classmethod
    def default_folder(cls) -> Path:
        return weights_dir() / cls.repo.split("/")[-1] / "vae"

    @classmethod
    def where_to_get(cls) -> str:
        name = cls.repo.split("/")[-1]
        return (f"get the vae/ folder of the official diffusers repository https://huggingface.co/{cls.repo}, e.g. "
                f"`huggingface-cli download {cls.repo} --include 'vae/*' --local-dir /models/{name}`, then pass "
                f"--model-arg path=/models/{name}/vae")

    def resolve_folder(self, path: str | None) -> Path:
        """The VAE folder: `path` (or the repository root holding vae/), else the default under the weights folder."""
        folder = Path(path).expanduser() if path else self.default_folder()
        if not (folder / "config.json").is_file() and (folder / "vae" / "config.json").is_file():
            folder = folder / "vae"  # the root of the diffusers repository was given
        if not folder.is_dir():
            raise MissingDataError(f"{self.class_name} weights: no folder {folder}; {self.where_to_get()}")
        missing = [p.name for p in [folder / "config.json", *loaded_weight_files(folder)] if not p.is_file()]
        if missing:
            raise MissingDataError(f"{self.class_name} weights: {folder} lacks {', '.join(missing)} (a diffusers VAE "
                                   f"folder holds config.json and {WEIGHTS_FILE}); {self.where_to_get()}")
        declared = json.loads((folder / "config.json").read_text()).get("_class_name")
        if declared and declared != self.class_name:
            raise MissingDataError(f"{folder / 'config.json'} describes a {declared}, not a {self.class_name}; "
                                   f"{self.where_to_get()}")
        return folder

    def _load(self) -> torch.nn.Module:
        cls = getattr(importlib.import_module("diffusers"), self.class_name)
        # low_cpu_mem_usage needs `accelerate`; without it diffusers would fall back (with a warning) anyway
        module = cls.from_pretrained(str(self.folder), local_files_only=True, use_safetensors=True,
                                     torch_dtype=self.dtype,
                                     low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None)
        return module.to(self.device).eval().requires_grad_(False)

    def config(self) -> dict[str, Any]:
        """The args that define the answers; the folder's path does not (its files' hashes do, see weight_hashes)."""
        return dict(self.args)

    def weight_hashes(self) -> dict[str, str]:
        if self._hashes is None:
            files = [self.folder / "config.json", *loaded_weight_files(self.folder)]
            self._hashes = {p.name: sha256_file(p) for p in files}
        return dict(self._hashes)

    # -- what each family answers from its loaded config ------------------------------------------------------
    def factors(self) -> tuple[int, int]:
        """(temporal, spatial) downsampling of the loaded model."""
        raise NotImplementedError

    def latent_channels(self) -> int:
        return int(self.module.config.latent_channels)

    def valid_frame_step(self) -> int:
        """Valid clips have 1 + k*step frames."""
        return self.temporal_factor

    def tiling_kwargs(self, tile: dict[str, int]) -> dict[str, Any]:
        """The class's enable_tiling() keywords for the generic tile args given (absent ones keep its defaults)."""
        names = {"tile_height": "tile_sample_min_height", "tile_width": "tile_sample_min_width",
                 "tile_stride_height": "tile_sample_stride_height", "tile_stride_width": "tile_sample_stride_width",
                 "tile_frames": "tile_sample_min_num_frames", "tile_stride_frames": "tile_sample_stride_num_frames"}
        return {names[k]: int(v) for k, v in tile.items()}

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.module.decode(z).sample

    # -- requests --------------------------------------------------------------------------------------------
    def padded(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return padded_shape(shape, self.frame_step, self.spatial_factor)

    def _posterior(self, video: torch.Tensor):
        x = pad_video(video.to(self.device), self.padded(tuple(video.shape[2:])), self.spatial_pad)  # padded in fp32
        return self.module.encode(x.to(self.dtype)).latent_dist

    def clip_noise(self, shape: tuple[int, ...], keys: list[bytes], purpose: str) -> torch.Tensor:
        """Standard normal noise (len(keys), *shape), each clip's seeded by (seed, purpose, sha256 of its key), so a
        clip's draw never depends on the other clips of its batch."""
        noise = []
        for key in keys:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, purpose, hashlib.sha256(key).hexdigest()))
            noise.append(torch.randn(shape, generator=gen))
        return torch.stack(noise)

    def _draw(self, dist, video: torch.Tensor) -> torch.Tensor:
        """mean + std * noise, keyed by each clip's uint8 pixels."""
        keys = [to_uint8_frames(clip.cpu()).numpy().tobytes() for clip in video]
        return dist.mean + dist.std * self.clip_noise(tuple(dist.mean.shape[1:]), keys, "vae-posterior").to(dist.mean)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> Tokens:
        shape = tuple(int(s) for s in video.shape[2:])
        dist = self._posterior(video)
        z = self._draw(dist, video) if self.sample else dist.mode()
        return Tokens(shape, latent=z, latent_elements=int(z[0].numel()), payload={"padded": self.padded(shape)})

    @torch.no_grad()
    def decode(self, tokens: Tokens) -> torch.Tensor:
        out = self.decode_latent(tokens.latent.to(self.device, self.dtype))
        expected = tuple((tokens.payload or {}).get("padded") or self.padded(tokens.video_shape))
        if tuple(out.shape[2:]) != expected:
            raise RuntimeError(f"{self.class_name} decoded {tuple(out.shape[2:])} from a latent of "
                               f"{tuple(tokens.latent.shape[2:])}, expected the padded input {expected}")
        return trim_video(out.float(), tokens.video_shape).clamp(-1, 1)

    @torch.no_grad()
    def features(self, video: torch.Tensor, level: int | str = "last") -> torch.Tensor:
        """The latent grid (B, t, h, w, C): the posterior mode (also when `sample` is on), one level."""
        self._check_level(level)
        return self._posterior(video).mode().float().permute(0, 2, 3, 4, 1)

    def feature_stride(self, level: int | str = "last") -> tuple[int, int, int]:
        """(t, s, s). Causal in time: latent frame 0 is frame 0 alone, latent frame k covers frames
        (k-1)*t+1 .. k*t; spatial cells are s x s pixels from the top-left corner."""
        self._check_level(level)
        return (self.temporal_factor, self.spatial_factor, self.spatial_factor)

    @staticmethod
    def _check_level(level: int | str) -> None:
        if level not in ("first", "last", 0, -1):
            raise ValueError(f"a VAE has one latent level; level {level!r} is not one of first, last, 0, -1")


class CogVideoXVAE(DiffusersVideoVAE):
    class_name = "AutoencoderKLCogVideoX"
    repo = "THUDM/CogVideoX-2b"
    tile_args = ("tile_height", "tile_width", "tile_stride_height", "tile_stride_width")
    metadata = ModelMetadata("CogVideoX VAE (continuous, KL)", family="vae", compression=(4, 8, 8),
                             latent_channels=16, discrete=False, source="THUDM/CogVideoX-2b vae/ via diffusers",
                             license="Apache-2.0 (CogVideoX-2b)",
                             notes="posterior mode; 1 + 8k frames (decoder works on latent pairs)")

    def factors(self) -> tuple[int, int]:
        cfg = self.module.config
        return int(cfg.temporal_compression_ratio), 2 ** (len(cfg.block_out_channels) - 1)

    def valid_frame_step(self) -> int:
        # the diffusers decoder decodes latent frames in batches of num_latent_frames_batch_size (2): an odd number
        # of latent frames, i.e. 1 + 8k input frames, is the only count it returns unchanged
        return self.temporal_factor * int(getattr(self.module, "num_latent_frames_batch_size", 1))

    def tiling_kwargs(self, tile: dict[str, int]) -> dict[str, Any]:
        """This class takes overlap factors instead of strides: overlap = 1 - stride / tile."""
        m = self.module
        h, w = int(tile.get("tile_height", m.tile_sample_min_height)), int(tile.get("tile_width",
                                                                                    m.tile_sample_min_width))
        out: dict[str, Any] = {"tile_sample_min_height": h, "tile_sample_min_width": w}
        if "tile_stride_height" in tile:
            out["tile_overlap_factor_height"] = 1 - int(tile["tile_stride_height"]) / h
        if "tile_stride_width" in tile:
            out["tile_overlap_factor_width"] = 1 - int(tile["tile_stride_width"]) / w
        return out


class WanVAE(DiffusersVideoVAE):
    class_name = "AutoencoderKLWan"
    repo = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    tile_args = ("tile_height", "tile_width", "tile_stride_height", "tile_stride_width")
    metadata = ModelMetadata("Wan 2.1 VAE (continuous, KL)", family="vae", compression=(4, 8, 8), latent_channels=16,
                             discrete=False, source="Wan-AI/Wan2.1-T2V-1.3B-Diffusers vae/ via diffusers",
                             license="Apache-2.0", notes="posterior mode; 1 + 4k frames")

    def factors(self) -> tuple[int, int]:
        cfg = self.module.config
        return 2 ** sum(bool(d) for d in cfg.temperal_downsample), \
            2 ** (len(cfg.dim_mult) - 1) * int(cfg.patch_size or 1)

    def latent_channels(self) -> int:
        return int(self.module.config.z_dim)


class LTXVideoVAE(DiffusersVideoVAE):
    class_name = "AutoencoderKLLTXVideo"
    repo = "Lightricks/LTX-Video"
    tile_args = TILE_ARGS
    metadata = ModelMetadata("LTX-Video VAE (continuous, KL)", family="vae", compression=(8, 32, 32),
                             latent_channels=128, discrete=False, source="Lightricks/LTX-Video vae/ via diffusers",
                             license="LTX-Video open-weights license (see the model card of the release used)",
                             notes="posterior mode; 1 + 8k frames, multiples of 32 pixels")

    def __init__(self, device="cpu", decode_timestep: float = 0.0, decode_noise_scale: float = 0.0, **args: Any):
        super().__init__(device, **args)
        self.decode_timestep, self.decode_noise_scale = float(decode_timestep), float(decode_noise_scale)
        self.args.update(decode_timestep=self.decode_timestep, decode_noise_scale=self.decode_noise_scale)

    def factors(self) -> tuple[int, int]:
        return int(self.module.temporal_compression_ratio), int(self.module.spatial_compression_ratio)

    def tiling_kwargs(self, tile: dict[str, int]) -> dict[str, Any]:
        if "tile_frames" in tile or "tile_stride_frames" in tile:  # this class tiles time only when told to
            self.module.use_framewise_encoding = self.module.use_framewise_decoding = True
        return super().tiling_kwargs(tile)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Timestep-conditioned decoders (0.9.1+) get `decode_timestep` and, like the pipeline, the latent mixed with
        `decode_noise_scale` of noise. Defaults: timestep 0 and no noise, a plain reconstruction (the pipeline's
        default noise scale is the timestep; pass it explicitly to match a pipeline run)."""
        if not self.module.config.timestep_conditioning:
            return self.module.decode(z).sample
        s = self.decode_noise_scale
        if s:
            keys = [clip.float().cpu().numpy().tobytes() for clip in z]
            z = (1 - s) * z + s * self.clip_noise(tuple(z.shape[1:]), keys, "ltx-decode-noise").to(z)
        t = torch.full((z.shape[0],), self.decode_timestep, device=z.device, dtype=z.dtype)
        return self.module.decode(z, t).sample


class HunyuanVideoVAE(DiffusersVideoVAE):
    class_name = "AutoencoderKLHunyuanVideo"
    repo = "hunyuanvideo-community/HunyuanVideo"
    tile_args = TILE_ARGS
    metadata = ModelMetadata("HunyuanVideo VAE (continuous, KL)", family="vae", compression=(4, 8, 8),
                             latent_channels=16, discrete=False,
                             source="hunyuanvideo-community/HunyuanVideo vae/ via diffusers",
                             license="Tencent Hunyuan Community License",
                             notes="posterior mode; 1 + 4k frames; frame-wise (temporal) tiling above 16 frames is "
                                   "the class's default")

    def factors(self) -> tuple[int, int]:
        cfg = self.module.config
        return int(cfg.temporal_compression_ratio), int(cfg.spatial_compression_ratio)
