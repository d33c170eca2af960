"""`--model pyratok`: the PyraTok tokenizer as a harness adapter (encode/decode, features per pyramid level,
embed_text in the shared code space, generate through the hierarchy prior).

Bits. `Tokens.bits` counts exactly what `decode` reads: the last level's codes, k bits x residual stages per latent
cell (a 16-bit 4x8x8 tokenizer at 17x128x128: 5x16x16x16 = 20480 bits, 0.0735 bpp). `Tokens.levels` holds every
level (each residual stage as its own CodeLevel, MSB-first bits), so codebook usage is reported per level; the
reconstruction task's `bpp` is the decoder's bits, and `tokens_per_clip` sums codes over all levels.

By default the bundled checkpoint models/pyratok/weights/pyratok-tiny-lang.{safetensors,json} is loaded;
`--model-arg checkpoint=PATH` takes another bundle (stem, .safetensors or .json) or a training folder, and
`checkpoint=none` builds a randomly initialized model of `config=NAME` (for tests and speed measurements).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.hashing import sha256_file
from models.base import EMBED_TEXT, FEATURES, GENERATE, RECONSTRUCT, CodeLevel, GeneratedVideos, ModelAdapter, \
    ModelMetadata, Tokens
from models.tokenizer.checkpoint import bundle_files
from models.tokenizer.tiling import tiled_decode, tiled_quantize

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED = WEIGHTS_DIR / "pyratok-tiny-lang"


def check_overrides(cfg, train: dict[str, Any], overrides: dict[str, Any], checkpoint: str) -> None:
    """Model args given with a checkpoint must agree with what it was built and trained with (a sweep passes its
    grid values alongside the checkpoint): a disagreement would record one configuration and run another."""
    import dataclasses

    from models.pyratok.config import _coerce

    fields = {f.name for f in dataclasses.fields(cfg)}
    for key, value in overrides.items():
        if key in ("text_encoder", "vae"):
            continue  # runtime choices: where the text encoder / pretrained VAE are read from
        have = getattr(cfg, key) if key in fields else train.get(key, value)
        # CLI and YAML values arrive as strings ("4", "3e-4", "[1, 2]"): equal after coercion or as text is equal
        if _coerce(have, value) != have and str(value) != str(have):
            raise ValueError(f"checkpoint {checkpoint} has {key}={have!r}, but the run asks for {key}={value!r}")


class PyraTokAdapter(ModelAdapter):
    capabilities = frozenset({RECONSTRUCT, FEATURES, EMBED_TEXT, GENERATE})
    metadata = ModelMetadata("PyraTok (LaPQ on the Wan-2.1 causal VAE)", family="pyratok", compression=(4, 8, 8),
                             code_bits=16, latent_channels=16, discrete=True,
                             source="arXiv 2601.16210, re-implemented in PyraTok Bench", license="Apache-2.0",
                             notes="bits = last level (the decoder's input); all levels in Tokens.levels")
    trainer = "models.pyratok.train:train"

    def __init__(self, device: str | torch.device = "cpu", checkpoint: str | None = None, config: str = "tiny-lang",
                 tile: int = 256, overlap: int = 64, tiling: str = "auto", temperature: float = 1.0,
                 top_k: int | None = None, feature_kind: str = "continuous", **overrides: Any):
        from models.pyratok.config import PyraTokConfig, get_config
        from models.pyratok.model import PyraTokModel
        from models.tokenizer.checkpoint import load_weights
        from harness.io import read_json

        ckpt = str(BUNDLED) if checkpoint is None else str(checkpoint)
        super().__init__(device, checkpoint=ckpt if checkpoint is not None else "bundled:pyratok-tiny-lang",
                         config=config, tile=int(tile), overlap=int(overlap), tiling=tiling,
                         temperature=float(temperature), top_k=top_k, feature_kind=feature_kind, **overrides)
        self._files: dict[str, Path] = {}
        if ckpt == "none":
            cfg, _ = get_config(config, overrides)
            self.model = PyraTokModel(cfg)
        else:
            weights, meta = bundle_files(ckpt, "pyratok", BUNDLED)
            info = read_json(meta)
            cfg = PyraTokConfig.from_dict(info["config"])
            check_overrides(cfg, info.get("train") or {}, overrides, ckpt)
            runtime = {k: v for k, v in overrides.items() if k in ("text_encoder", "vae")}
            if runtime:
                cfg = cfg.replace(**runtime)
            self.model = PyraTokModel(cfg)
            load_weights(self.model, weights)
            self._files["weights"] = weights
            self.training_record = {k: info.get(k) for k in ("config_name", "step", "elapsed_s", "command", "data")}
        if self.model.cfg.vae:
            for f in sorted(Path(self.model.cfg.vae).glob("*.safetensors")):
                self._files[f"vae/{f.name}"] = f
        self.model.to(self.device).eval()
        self.module = self.model
        cfg = self.model.cfg
        self.metadata = ModelMetadata(
            self.metadata.display_name, "pyratok", (self.model.backbone.temporal_factor,
                                                   self.model.backbone.spatial_factor,
                                                   self.model.backbone.spatial_factor),
            cfg.codebook_bits * cfg.residual_stages, cfg.backbone.z_dim, True, self.metadata.source,
            self.metadata.license, f"{cfg.levels} levels x {cfg.codebook_bits} bits (shared codebook), "
            f"{cfg.residual_stages} residual stage(s), align {cfg.align_levels}; bits = last level")
        if feature_kind not in ("continuous", "quantized"):
            raise ValueError("feature_kind must be 'continuous' (pre-sign values) or 'quantized' (±1 codes)")

    # -- identity ------------------------------------------------------------------------------------------------
    def weight_hashes(self) -> dict[str, str]:
        """The checkpoint, a pretrained VAE if given, and the text encoder's weights (embed_text depends on them)."""
        from models.pyratok.text import resolve_text_encoder

        out = {role: sha256_file(p) for role, p in self._files.items()}
        if "_text_hashes" not in self.__dict__:
            path = resolve_text_encoder(self.model.cfg.text_encoder)
            self._text_hashes = {f"text_encoder/{f.name}": sha256_file(f) for f in sorted(path.glob("*.safetensors"))}
        return {**out, **self._text_hashes}

    # -- helpers -------------------------------------------------------------------------------------------------
    def _use_tiling(self, h: int, w: int) -> bool:
        mode = self.args["tiling"]
        if mode in (True, "on", "always"):
            return True
        if mode in (False, "off", "never"):
            return False
        return h > self.args["tile"] or w > self.args["tile"]

    def _quantize(self, video: torch.Tensor):
        """(padded clip, [z per level], [[±1 codes per stage] per level])."""
        m = self.model
        x = m.backbone.pad_input(video.to(self.device, torch.float32))
        text = m.text_adapter.null_context(x.shape[0], x.device)
        if self._use_tiling(x.shape[3], x.shape[4]):
            zs, codes = tiled_quantize(m, x, text, self.args["tile"], self.args["overlap"])
        else:
            q = m.quantize(x, text)
            zs, codes = [lv.z for lv in q.levels], [[c.detach() for c in lv.stage_codes] for lv in q.levels]
        return x, zs, codes

    def _level_index(self, level: int | str) -> int:
        n = self.model.cfg.levels
        if level in ("first", "shallowest"):
            return 0
        if level in ("last", "deepest", None):
            return n - 1
        if isinstance(level, str) and level.startswith("l") and level[1:].isdigit():
            return int(level[1:]) - 1
        i = int(level)
        if not -n <= i < n:
            raise ValueError(f"level {level} out of range: PyraTok has {n} levels (0-based, or 'first'/'last')")
        return i % n

    # -- requests ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> Tokens:
        b, _, t, h, w = video.shape
        x, zs, codes = self._quantize(video)
        names = self.model.quantizer.level_names
        from models.tokenizer.binary import to_bits

        levels: list[CodeLevel] = []
        for name, stage_codes in zip(names, codes):
            many = len(stage_codes) > 1
            levels += [CodeLevel(f"{name}.s{i}" if many else name, bits=to_bits(c), bit_order="msb")
                       for i, c in enumerate(stage_codes)]
        last = codes[-1]
        cells = last[0].shape[2] * last[0].shape[3] * last[0].shape[4]
        bits = torch.full((b,), float(cells * sum(c.shape[1] for c in last)), dtype=torch.float64)
        n_last = len(last)
        return Tokens((t, h, w), levels=levels, bits=bits,
                      payload={"padded": tuple(x.shape[2:]), "decoder_levels": [lv.name for lv in levels[-n_last:]]})

    @torch.no_grad()
    def decode(self, tokens: Tokens) -> torch.Tensor:
        wanted = tokens.payload["decoder_levels"]
        by_name = {lv.name: lv for lv in tokens.levels}
        codes = [by_name[n] for n in wanted]
        value = self.model.quantizer.dequantize(codes).to(self.device)
        if self._use_tiling(*tokens.payload["padded"][1:]):
            out = tiled_decode(self.model, value, self.args["tile"], self.args["overlap"])
        else:
            out = self.model.decode_value(value, clamp=True)
        t, h, w = tokens.video_shape
        return out[:, :, :t, :h, :w]

    @torch.no_grad()
    def features(self, video: torch.Tensor, level: int | str = "last") -> torch.Tensor:
        """(B, t, h, w, k) code-space values of one level (pre-sign by default; ±1 with feature_kind=quantized),
        cropped to the cells that cover the unpadded clip."""
        i = self._level_index(level)
        _, zs, codes = self._quantize(video)
        if self.args["feature_kind"] == "quantized":
            from models.tokenizer.binary import dequantize_stages

            f = dequantize_stages(codes[i])
        else:
            f = zs[i]
        st, sh, sw = self.feature_stride(i)
        t, h, w = video.shape[2:]
        keep = (1 + (t - 1 + st - 1) // st if st > 1 else t, -(-h // sh), -(-w // sw))
        return f[:, :, :keep[0], :keep[1], :keep[2]].permute(0, 2, 3, 4, 1).contiguous()

    def feature_stride(self, level: int | str = "last") -> tuple[int, int, int]:
        """(t, h, w) down-sampling of `features` at `level`. Time is causal: cell 0 is frame 0 alone, cell i >= 1
        covers frames (i-1)*t+1 ... i*t."""
        return tuple(self.model.quantizer.strides[self._level_index(level)])

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return self.model.embed_text(list(texts)).float().cpu()

    def generate(self, prompts: list[str], seed: int, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Sample every level from the hierarchy prior (temperature and top_k are model args, recorded), then
        decode the last level; one generator seeded with `seed` serves the batch. Frame sizes are rounded up to the
        backbone's grid and cropped back."""
        video, _ = self._sample(prompts, torch.Generator().manual_seed(int(seed)), num_frames, height, width)
        return video

    def generate_videos(self, prompts: list[str], seeds: list[int], num_frames: int, height: int,
                        width: int) -> GeneratedVideos:
        """The whole request batch through the prior at once, each video drawn from its own seed's generator (so it
        does not depend on the batch), and the sampled last-level codes the videos were decoded from."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return GeneratedVideos(torch.zeros(0, 3, num_frames, height, width))
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        video, stages = self._sample(prompts, gens, num_frames, height, width)
        from models.tokenizer.binary import to_bits

        name = self.model.quantizer.level_names[-1]
        many = len(stages) > 1
        levels = [CodeLevel(f"{name}.s{i}" if many else name, bits=to_bits(c).cpu(), bit_order="msb")
                  for i, c in enumerate(stages)]
        padded = tuple(self.model.backbone.pad_input(torch.zeros(1, 3, num_frames, height, width)).shape[2:])
        payload = {"padded": padded, "decoder_levels": [lv.name for lv in levels]}  # so `decode` reads them back
        return GeneratedVideos(video, Tokens((num_frames, height, width), levels=levels, payload=payload))

    @torch.no_grad()
    def _sample(self, prompts: list[str], generator, num_frames: int, height: int, width: int):
        """(videos (B, 3, T, H, W) on the CPU, the last level's ±1 codes per residual stage)."""
        m = self.model
        bb = m.backbone
        shape = bb.pad_input(torch.zeros(1, 3, num_frames, height, width)).shape[2:]
        grids = []
        for st, sh, sw in m.quantizer.strides:
            grids.append((1 + (shape[0] - 1) // st if st > 1 else shape[0], shape[1] // sh, shape[2] // sw))
        text = m.text_context(list(prompts), self.device)
        levels = m.prior.sample(text, grids, self.args["temperature"], self.args["top_k"], generator)
        last = levels[-1]
        k = m.cfg.codebook_bits
        stages = [last[:, i * k:(i + 1) * k] for i in range(m.cfg.residual_stages)]
        from models.tokenizer.binary import dequantize_stages

        out = m.decode_value(dequantize_stages(stages), clamp=True)
        return out[:, :, :num_frames, :height, :width].cpu(), stages
