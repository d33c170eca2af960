"""`--model lfq|bsq|vq|rvq|fsq`: the learned baselines as harness adapters (encode/decode and features; no text, so
text-only protocols report them as not applicable).

Codes and bits. `Tokens.levels` holds the latent grid's codes: bits (B, t, h, w, k) with their `bit_order` for LFQ
(LSB-first, Open-MAGVIT2) and BSQ (MSB-first); indices with `codebook_size` for VQ (2^16), FSQ (64,000) and RVQ
(one CodeLevel per stage, "latent.s0", "latent.s1", 2^8 each). `Tokens.bits` is exactly what `decode` reads: latent
cells x bits per cell (16 for every default: k bits, log2 of the codebook, stages x log2 of the stage codebook, or
the 16-bit fixed-length code of FSQ's 64,000 codes). `decode` rebuilds the decoder input from those codes alone.

By default the bundled checkpoint models/baselines/tokenizers/weights/<family>-tiny.{safetensors,json} is loaded;
`--model-arg checkpoint=PATH` takes another bundle (stem, .safetensors or .json) or a training folder, and
`checkpoint=none` builds a randomly initialized model of `config=NAME` (tests, speed measurements).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from harness.hashing import sha256_file
from models.base import FEATURES, RECONSTRUCT, ModelAdapter, ModelMetadata, Tokens
from models.baselines.tokenizers.train import is_training_only
from models.tokenizer.checkpoint import bundle_files
from models.tokenizer.tiling import _weights, tile_starts, tiled_decode

WEIGHTS_DIR = Path(__file__).parent / "weights"

DESCRIPTIONS = {
    "lfq": ("LFQ (MAGVIT-v2 / Open-MAGVIT2) on the Wan causal VAE", "arXiv 2310.05737; Open-MAGVIT2"),
    "bsq": ("BSQ (binary spherical quantization) on the Wan causal VAE", "arXiv 2406.07548; bsq-vit"),
    "vq": ("VQ (VQ-VAE/VQGAN, EMA codebook) on the Wan causal VAE", "arXiv 1711.00937, 2012.09841"),
    "rvq": ("RVQ (residual VQ) on the Wan causal VAE", "arXiv 2107.03312 (SoundStream)"),
    "fsq": ("FSQ (finite scalar quantization, Cosmos levels) on the Wan causal VAE", "arXiv 2309.15505; Cosmos"),
}


def load_checkpoint(model: torch.nn.Module, weights: Path) -> None:
    """Load weights; an inference bundle may lack only the training-only buffers (EMA statistics, idle counters)."""
    from models.tokenizer.checkpoint import load_weights

    missing, unexpected = load_weights(model, weights, strict=False)
    bad = [k for k in missing if not is_training_only(k)]
    if bad or unexpected:
        raise ValueError(f"{weights} does not match the model: missing {bad[:5]}, unexpected {unexpected[:5]}")


def listed_metadata(family: str) -> ModelMetadata:
    """What `harness list` shows before a checkpoint is loaded (the bundled tiny configuration's facts)."""
    name, source = DESCRIPTIONS[family]
    return ModelMetadata(name, family, (4, 8, 8), 16, 16, True, source + ", re-implemented in PyraTok Bench",
                         "Apache-2.0", "bundled checkpoint: trained here on the mini splits (docs/baselines-learned.md)")


class LearnedTokenizerAdapter(ModelAdapter):
    family: ClassVar[str] = ""
    capabilities = frozenset({RECONSTRUCT, FEATURES})

    def __init__(self, device: str | torch.device = "cpu", checkpoint: str | None = None, config: str = "tiny",
                 tile: int = 256, overlap: int = 64, tiling: str = "auto", feature_kind: str = "continuous",
                 **overrides: Any):
        from harness.io import read_json
        from models.baselines.tokenizers.config import BaselineConfig, get_config
        from models.baselines.tokenizers.model import BaselineTokenizer

        fam = self.family
        bundled = WEIGHTS_DIR / f"{fam}-tiny"
        super().__init__(device, checkpoint=f"bundled:{fam}-tiny" if checkpoint is None else str(checkpoint),
                         config=config, tile=int(tile), overlap=int(overlap), tiling=tiling,
                         feature_kind=feature_kind, **overrides)
        if feature_kind not in ("continuous", "quantized"):
            raise ValueError("feature_kind must be 'continuous' (pre-quantization values) or 'quantized'")
        self._files: dict[str, Path] = {}
        self.training_record: dict[str, Any] = {}
        if str(checkpoint) == "none":
            cfg, _ = get_config(fam, config, overrides)
            self.model = BaselineTokenizer(cfg)
        else:
            unused = sorted(set(overrides) - {"vae"})
            if unused:  # they would be recorded with the results while changing nothing
                raise ValueError(f"model args {unused} configure an untrained model (checkpoint=none); a "
                                 "checkpoint fixes them")
            weights, meta = bundle_files(bundled if checkpoint is None else checkpoint, fam, bundled)
            info = read_json(meta)
            cfg = BaselineConfig.from_dict(info["config"])
            if overrides.get("vae"):
                cfg = cfg.replace(vae=overrides["vae"])
            if cfg.family != fam:
                raise ValueError(f"{meta} is a {cfg.family} checkpoint, not {fam}")
            self.model = BaselineTokenizer(cfg)
            load_checkpoint(self.model, weights)
            self._files["weights"] = weights
            self.training_record = {k: info.get(k) for k in ("config_name", "step", "elapsed_s", "command", "data")}
        if self.model.cfg.vae:
            for f in sorted(Path(self.model.cfg.vae).glob("*.safetensors")):
                self._files[f"vae/{f.name}"] = f
        self.model.to(self.device).eval()
        self.module = self.model
        bb, cfg = self.model.backbone, self.model.cfg
        name, source = DESCRIPTIONS[fam]
        self.metadata = ModelMetadata(name, fam, (bb.temporal_factor, bb.spatial_factor, bb.spatial_factor),
                                      cfg.bits_per_cell, bb.z_dim, True, source + ", re-implemented in PyraTok Bench",
                                      "Apache-2.0", f"{cfg.bits_per_cell} bits per 4x8x8 cell; same backbone and "
                                      "training recipe as PyraTok, only the quantizer differs")

    # -- identity ------------------------------------------------------------------------------------------------
    def weight_hashes(self) -> dict[str, str]:
        return {role: sha256_file(p) for role, p in self._files.items()}

    # -- helpers -------------------------------------------------------------------------------------------------
    def _use_tiling(self, h: int, w: int) -> bool:
        mode = self.args["tiling"]
        if mode in (True, "on", "always"):
            return True
        if mode in (False, "off", "never"):
            return False
        return h > self.args["tile"] or w > self.args["tile"]

    def _latent_z(self, x: torch.Tensor) -> torch.Tensor:
        """The quantizer's continuous input (B, code_dim, t, h, w) for a padded clip; with tiling, each tile is
        encoded alone and the values are blended over the overlaps (linear ramps), then quantized once."""
        m = self.model
        if not self._use_tiling(x.shape[3], x.shape[4]):
            return m.quantizer.project(m.backbone.encode_taps(x, ["latent"])["latent"])
        b, _, _, h, w = x.shape
        s = m.backbone.spatial_factor
        th, tw = min(self.args["tile"], h), min(self.args["tile"], w)
        sh, sw = tile_starts(h, th, self.args["overlap"], s), tile_starts(w, tw, self.args["overlap"], s)
        acc = wsum = None
        for i, y0 in enumerate(sh):
            for j, x0 in enumerate(sw):
                lat = m.backbone.encode_taps(x[..., y0:y0 + th, x0:x0 + tw], ["latent"])["latent"]
                z = m.quantizer.project(lat)
                if acc is None:
                    acc = x.new_zeros(b, z.shape[1], z.shape[2], h // s, w // s)
                    wsum = x.new_zeros(1, 1, 1, h // s, w // s)
                wt = _weights(sh, sw, i, j, th, tw, s, h, w).to(x)
                ys, xs = slice(y0 // s, (y0 + th) // s), slice(x0 // s, (x0 + tw) // s)
                acc[..., ys, xs] += z * wt
                wsum[..., ys, xs] += wt
        return acc / wsum

    def _level_check(self, level: int | str) -> None:
        if level not in ("first", "last", "latent", None, 0, -1, "0", "-1"):
            raise ValueError(f"{self.family} has one feature level (the latent grid): use 'last' or 0, got {level!r}")

    # -- requests ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> Tokens:
        b, _, t, h, w = video.shape
        x = self.model.backbone.pad_input(video.to(self.device, torch.float32))
        q = self.model.quantizer.quantize_z(self._latent_z(x))
        lv = q.levels[0]
        levels = lv.code_levels()
        bits = torch.full((b,), float(lv.cells * lv.bits_per_cell), dtype=torch.float64)
        return Tokens((t, h, w), levels=levels, bits=bits, payload={"padded": tuple(x.shape[2:])})

    @torch.no_grad()
    def decode(self, tokens: Tokens) -> torch.Tensor:
        value = self.model.quantizer.dequantize(tokens.levels).to(self.device)
        if self._use_tiling(*tokens.payload["padded"][1:]):
            out = tiled_decode(self.model, value, self.args["tile"], self.args["overlap"])
        else:
            out = self.model.decode_value(value, clamp=True)
        t, h, w = tokens.video_shape
        return out[:, :, :t, :h, :w]

    @torch.no_grad()
    def features(self, video: torch.Tensor, level: int | str = "last") -> torch.Tensor:
        """(B, t, h, w, d) values of the latent grid as the quantizer sees them (`feature_kind=quantized`: the
        quantized values the decoder reads), cropped to the cells that cover the unpadded clip."""
        self._level_check(level)
        x = self.model.backbone.pad_input(video.to(self.device, torch.float32))
        z = self._latent_z(x)
        qz = self.model.quantizer
        f = qz.quantize_z(z).quantized if self.args["feature_kind"] == "quantized" else qz.code_space(z)
        st, sh, sw = self.feature_stride(level)
        t, h, w = video.shape[2:]
        keep = (1 + (t - 1 + st - 1) // st if st > 1 else t, -(-h // sh), -(-w // sw))
        return f[:, :, :keep[0], :keep[1], :keep[2]].permute(0, 2, 3, 4, 1).contiguous()

    def feature_stride(self, level: int | str = "last") -> tuple[int, int, int]:
        """(t, h, w) down-sampling of the latent grid; time is causal (cell 0 = frame 0, cell i covers frames
        (i-1)·t+1 ... i·t)."""
        self._level_check(level)
        return tuple(self.model.quantizer.stride)


class LFQAdapter(LearnedTokenizerAdapter):
    family = "lfq"
    metadata = listed_metadata("lfq")
    trainer = "models.baselines.tokenizers.train:train_lfq"


class BSQAdapter(LearnedTokenizerAdapter):
    family = "bsq"
    metadata = listed_metadata("bsq")
    trainer = "models.baselines.tokenizers.train:train_bsq"


class VQAdapter(LearnedTokenizerAdapter):
    family = "vq"
    metadata = listed_metadata("vq")
    trainer = "models.baselines.tokenizers.train:train_vq"


class RVQAdapter(LearnedTokenizerAdapter):
    family = "rvq"
    metadata = listed_metadata("rvq")
    trainer = "models.baselines.tokenizers.train:train_rvq"


class FSQAdapter(LearnedTokenizerAdapter):
    family = "fsq"
    metadata = listed_metadata("fsq")
    trainer = "models.baselines.tokenizers.train:train_fsq"
