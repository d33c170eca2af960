"""`--model pyratok-release`: the public release's checkpoint layout (huggingface.co/onkarsus13/PyraTok, code
PLAN-Lab/PyraTok commit 77741ee), loaded into this repository's modules.

What the release is (see docs/pyratok.md): the Wan-2.1-architecture VAE plus a 4-stage RESIDUAL binary quantizer
(`ResidualLaPQunatizer3D`, 16 bits per stage, MSB-first indices, stage i scaled by 2^-i) on the final 16-channel
latent (posterior mode), each stage with a text cross-attention (2 heads, width 16, text projected 256 -> 16 with
LayerNorm) whose scale the code forces to 0, and a text MLP 2560 -> 1024 -> 256 (SiLU) in front of a Qwen3 encoder
(hidden_states[-4], chat template, 10 tokens). No pyramid, no AR prior, no drift.

Folder layout read (a diffusers model folder, as in the HF repository):
    <folder>/vae/config.json                                   AutoencoderKLPyraTok config (lapq_* fields)
    <folder>/vae/diffusion_pytorch_model.safetensors           (or .bin, or a sharded .safetensors.index.json)
    <folder>/text_encoder/, <folder>/tokenizer/                optional: Qwen3 (only used with text_condition=on)

Key mapping (release -> this repository), everything else is rejected:
    encoder.* decoder.* quant_conv.* post_quant_conv.*          -> backbone.vae.<same>
    lapq_text_mlp.{0,2}.{weight,bias}                           -> text_mlp.{0,2}.<same>
    lapq_quantizer.layers.<i>.cross_attn.{in_proj_weight,in_proj_bias,out_proj.weight,out_proj.bias}
    lapq_quantizer.layers.<i>.{query_norm,text_context_norm,text_proj}.{weight,bias}
                                                                -> quantizer.layers.<i>.<same>
    lapq_quantizer.layers.<i>.{bitmask,codebook}                checked against the MSB-first {-1,+1}^16 codebook,
                                                                then dropped (they are derived, not learned)
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from harness.errors import MissingDataError
from harness.hashing import sha256_file
from models.base import FEATURES, RECONSTRUCT, CodeLevel, ModelAdapter, ModelMetadata, Tokens
from models.tokenizer.backbone import BackboneConfig, WanBackbone
from models.tokenizer.binary import commitment_loss, factorized_entropy_loss, sign_ste, to_bits
from models.tokenizer.model import TokenizerModel
from models.tokenizer.quantizer import QuantizedLevel, Quantizer, QuantizerOutput, TextContext

HF_REPO = "huggingface.co/onkarsus13/PyraTok"
VAE_KEYS = {"base_dim", "decoder_base_dim", "z_dim", "dim_mult", "num_res_blocks", "temperal_downsample"}
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                "diffusion_pytorch_model.bin", "model.safetensors")


def default_release_folder() -> Path:
    from harness.cache import default_cache_root

    return Path(os.environ.get("PYRATOK_RELEASE_DIR") or Path(default_cache_root()) / "weights" / "PyraTok")


class ReleaseStage(nn.Module):
    """One `LaPQuantizer3D` stage: text cross-attention on the 16-wide latent tokens (residual, scaled)."""

    def __init__(self, dim: int, text_dim: int, heads: int):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.query_norm = nn.LayerNorm(dim)
        self.text_context_norm = nn.LayerNorm(dim)
        self.text_proj = nn.Linear(text_dim, dim)

    def condition(self, z: torch.Tensor, text: TextContext | None, scale: float) -> torch.Tensor:
        if text is None or scale == 0.0:
            return z
        b, c, t, h, w = z.shape
        query = z.flatten(2).transpose(1, 2)
        ctx = self.text_context_norm(self.text_proj(text.tokens))
        attn, _ = self.cross_attn(self.query_norm(query), ctx, ctx, key_padding_mask=~text.mask, need_weights=False)
        return (query + scale * attn).transpose(1, 2).reshape(b, c, t, h, w)


class ReleaseQuantizer(Quantizer):
    taps = ("latent",)
    bit_order = "msb"

    def __init__(self, dim: int = 16, stages: int = 4, text_dim: int = 256, heads: int = 2, text_scale: float = 0.0,
                 commitment_weight: float = 0.5, entropy_weight: float = 0.5, inv_temperature: float = 100.0):
        super().__init__()
        self.out_channels = dim
        self.residual_stages = stages
        self.text_scale = float(text_scale)
        self.commitment_weight, self.entropy_weight = commitment_weight, entropy_weight
        self.inv_temperature = inv_temperature
        self.layers = nn.ModuleList(ReleaseStage(dim, text_dim, heads) for _ in range(stages))
        self.level_names = ["latent"]

    def forward(self, features: list[torch.Tensor], text: TextContext | None = None) -> QuantizerOutput:
        z = features[-1]
        residual, total = z, torch.zeros_like(z)
        codes, loss = [], z.new_zeros(())
        for i, layer in enumerate(self.layers):
            zi = layer.condition(residual, text, self.text_scale)
            q = sign_ste(zi)
            loss = loss + self.commitment_weight * commitment_loss(zi, q)
            if self.training and self.entropy_weight > 0:
                loss = loss + self.entropy_weight * factorized_entropy_loss(zi, self.inv_temperature)
            codes.append(q)
            scaled = q * (2.0 ** -i)
            residual = residual - scaled.detach()
            total = total + scaled
        return QuantizerOutput(total, [QuantizedLevel("latent", z, total, codes, (4, 8, 8), "msb")],
                               {"lapq": loss})


class ReleaseModel(TokenizerModel):
    def __init__(self, vae_config: dict[str, Any]):
        bb = BackboneConfig(**{k: vae_config[k] for k in VAE_KEYS if k in vae_config})
        backbone = WanBackbone.from_config(bb)
        bits = int(vae_config.get("lapq_codebook_dim") or round(math.log2(vae_config.get("lapq_num_codes", 65536))))
        if 2 ** bits != int(vae_config.get("lapq_num_codes", 2 ** bits)):
            raise ValueError(f"lapq_num_codes {vae_config.get('lapq_num_codes')} is not 2^{bits}")
        if bits != bb.z_dim:
            raise ValueError(f"codebook_dim {bits} != z_dim {bb.z_dim}: the release's projection path for this case "
                             "uses nn.TransposeConv3d, which does not exist in PyTorch; no released checkpoint has it")
        text_in = vae_config.get("lapq_text_input_dim")
        text_dim = vae_config.get("lapq_text_embed_dim") or text_in or 256
        heads = vae_config.get("lapq_text_condition_heads") or _pick_heads(bits)
        quantizer = ReleaseQuantizer(bits, int(vae_config.get("lapq_num_quantizers", 2)), text_dim, heads, 0.0,
                                     vae_config.get("lapq_commitment_weight", 0.25),
                                     vae_config.get("lapq_entropy_weight", 0.1),
                                     vae_config.get("lapq_inv_temperature", 100.0))
        super().__init__(backbone, quantizer)
        if text_in and text_dim and text_in != text_dim:
            hidden = vae_config.get("lapq_text_mlp_hidden_dim") or max(2 * text_dim, text_dim)
            self.text_mlp = nn.Sequential(nn.Linear(text_in, hidden), nn.SiLU(), nn.Linear(hidden, text_dim))
        else:
            self.text_mlp = nn.Identity()
        self.configured_text_scale = float(vae_config.get("lapq_text_condition_scale", 1.0))


def _pick_heads(dim: int, max_heads: int = 8) -> int:
    return next(h for h in range(min(max_heads, dim), 0, -1) if dim % h == 0)


# ---------------------------------------------------------------------------------------------------------------
def msb_codebook(bits: int) -> torch.Tensor:
    ids = torch.arange(2 ** bits)
    mask = 2 ** torch.arange(bits - 1, -1, -1)
    return ((ids[:, None] & mask[None]) > 0).float() * 2 - 1


def map_release_key(key: str) -> str | None:
    """The module key of a release key; None for derived buffers (bitmask, codebook). Raises on an unknown key."""
    if key.split(".", 1)[0] in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
        return "backbone.vae." + key
    if re.fullmatch(r"lapq_text_mlp\.[02]\.(weight|bias)", key):
        return key.replace("lapq_text_mlp", "text_mlp", 1)
    m = re.fullmatch(r"lapq_quantizer\.layers\.(\d+)\.(.+)", key)
    if m:
        rest = m.group(2)
        if rest in ("bitmask", "codebook"):
            return None
        if re.fullmatch(r"cross_attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)"
                        r"|(query_norm|text_context_norm|text_proj)\.(weight|bias)", rest):
            return f"quantizer.layers.{m.group(1)}.{rest}"
    raise KeyError(f"release checkpoint key {key!r} is not part of the documented layout")


def read_release_state(vae_dir: Path) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """The VAE folder's tensors (safetensors, a sharded safetensors index, or torch.load(weights_only=True))."""
    from safetensors.torch import load_file

    for name in WEIGHT_NAMES:
        path = vae_dir / name
        if not path.exists():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for s in shards:
                state.update(load_file(str(vae_dir / s)))
            return state, [vae_dir / s for s in shards]
        if name.endswith(".bin"):
            return torch.load(path, map_location="cpu", weights_only=True), [path]
        return load_file(str(path)), [path]
    raise MissingDataError(f"no weights in {vae_dir}: expected one of {', '.join(WEIGHT_NAMES)} (from {HF_REPO}, "
                           "folder vae/)")


def load_release(folder: str | Path) -> tuple[ReleaseModel, dict[str, Any], list[Path]]:
    folder = Path(folder).expanduser()
    vae_dir = folder / "vae" if (folder / "vae").is_dir() else folder
    cfg_path = vae_dir / "config.json"
    if not cfg_path.exists():
        raise MissingDataError(f"the PyraTok release checkpoint was not found: expected {cfg_path} (the vae/ folder of "
                               f"{HF_REPO}; download it with `huggingface-cli download onkarsus13/PyraTok "
                               f"--local-dir {folder}` and pass --model-arg path={folder}, or set PYRATOK_RELEASE_DIR)")
    config = json.loads(cfg_path.read_text())
    model = ReleaseModel(config)
    state, files = read_release_state(vae_dir)
    mapped: dict[str, torch.Tensor] = {}
    bits = model.quantizer.out_channels
    for key, value in state.items():
        target = map_release_key(key)
        if target is None:
            if key.endswith("codebook") and not torch.equal(value.float(), msb_codebook(bits)):
                raise ValueError(f"{key} in {files[0]} is not the MSB-first {{-1,+1}}^{bits} codebook")
            if key.endswith("bitmask") and not torch.equal(value.long(), 2 ** torch.arange(bits - 1, -1, -1)):
                raise ValueError(f"{key} in {files[0]} is not the MSB-first bit mask")
            continue
        mapped[target] = value
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ValueError(f"release checkpoint {files[0]}: missing {sorted(missing)[:8]}, "
                         f"unexpected {sorted(unexpected)[:8]}")
    return model, config, files


class ReleaseAdapter(ModelAdapter):
    capabilities = frozenset({RECONSTRUCT, FEATURES})
    metadata = ModelMetadata("PyraTok public release (residual LFQ on the Wan-2.1 VAE latent)", family="pyratok",
                             compression=(4, 8, 8), code_bits=16, latent_channels=16, discrete=True,
                             source=HF_REPO, license="see the model card",
                             notes="4 residual 16-bit stages on the final latent; text attention off as released")

    def __init__(self, device: str | torch.device = "cpu", path: str | None = None, stages: int | None = None,
                 text_condition: str = "released", **args: Any):
        folder = Path(path) if path else default_release_folder()
        super().__init__(device, path=str(folder), stages=stages, text_condition=text_condition, **args)
        self.model, self.release_config, self._files = load_release(folder)
        if text_condition == "on":
            self.model.quantizer.text_scale = self.model.configured_text_scale
        elif text_condition != "released":
            raise ValueError("text_condition is 'released' (scale 0, as the public code runs) or 'on'")
        if stages is not None:  # evaluate with the first `stages` residual stages only
            self.model.quantizer.layers = self.model.quantizer.layers[:int(stages)]
            self.model.quantizer.residual_stages = int(stages)
        self.model.to(self.device).eval()
        self.module = self.model
        n = self.model.quantizer.residual_stages
        self.metadata = ModelMetadata(self.metadata.display_name, "pyratok", (4, 8, 8), 16 * n, 16, True, HF_REPO,
                                      "see the model card", f"{n} residual stages x 16 bits on the final latent")

    def weight_hashes(self) -> dict[str, str]:
        return {f"vae/{p.name}": sha256_file(p) for p in self._files}

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> Tokens:
        b, _, t, h, w = video.shape
        x = self.model.backbone.pad_input(video.to(self.device, torch.float32))
        q = self.model.quantize(x, None)
        lv = q.levels[0]
        levels = [CodeLevel(f"stage{i}", bits=to_bits(c), bit_order="msb") for i, c in enumerate(lv.stage_codes)]
        bits = torch.full((b,), float(lv.cells * lv.bits_per_cell), dtype=torch.float64)
        return Tokens((t, h, w), levels=levels, bits=bits, payload={"padded": tuple(x.shape[2:])})

    @torch.no_grad()
    def decode(self, tokens: Tokens) -> torch.Tensor:
        value = self.model.quantizer.dequantize(tokens.levels).to(self.device)
        t, h, w = tokens.video_shape
        return self.model.decode_value(value, clamp=True)[:, :, :t, :h, :w]

    @torch.no_grad()
    def features(self, video: torch.Tensor, level: int | str = "last") -> torch.Tensor:
        """(B, t, h, w, 16): the continuous latent the residual stages quantize (the release has one level)."""
        x = self.model.backbone.pad_input(video.to(self.device, torch.float32))
        z = self.model.backbone.encode_taps(x, ["latent"])["latent"]
        t, h, w = video.shape[2:]
        return z[:, :, :1 + (t - 1 + 3) // 4, :-(-h // 8), :-(-w // 8)].permute(0, 2, 3, 4, 1).contiguous()

    def feature_stride(self, level: int | str = "last") -> tuple[int, int, int]:
        return (4, 8, 8)
