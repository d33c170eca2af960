"""Content-debiased FVD (Ge et al., CVPR 2024; songweige/content-debiased-fvd): the Fréchet distance of VideoMAE
features instead of I3D logits, which weighs temporal quality more and per-frame quality less.

Features as cd-fvd computes them (`get_videomae_features`, `preprocess_videomae`, `forward_features`):
uint8 frames -> float in [0, 1] (no mean/std normalisation) -> bilinear resize of every frame to the model's
224x224 (align_corners=False, aspect squashed) -> the ViT encoder -> the mean over all patch tokens -> the `fc_norm`
LayerNorm (with the model's layer-norm epsilon, 1e-6 for VideoMAE-v2; transformers' own classification head would
use 1e-5). The model takes `num_frames` frames (16): a clip contributes its first 16 frames, which is what cd-fvd's
tubelet embedding keeps of a 17-frame clip as well.

The model is a local transformers VideoMAE folder (`VideoMAEForVideoClassification`, or a bare `VideoMAEModel`, in
which case the feature is the token mean without fc_norm). cd-fvd's checkpoint `vit_g_hybrid_pt_1200e_ssv2_ft.pth`
(VideoMAE-v2 ViT-g/14 fine-tuned on SSv2) is converted to that format by `convert_videomaev2_checkpoint`:
    python -m harness.metrics.cdfvd convert vit_g_hybrid_pt_1200e_ssv2_ft.pth $PYRATOK_BENCH_WEIGHTS/videomae-v2-g-ssv2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import DataError, MissingDataError
from harness.weights import find_weight, missing_message, weight_sha256

DEFAULT_VIDEOMAE = "videomae-v2-g-ssv2"


def videomae_folder(path: str | Path | None = None) -> Path | None:
    p = Path(path).expanduser() if path is not None else find_weight(DEFAULT_VIDEOMAE)
    return p if p is not None and (p / "config.json").is_file() else None


def videomae_unavailable(path: str | Path | None = None) -> str | None:
    if videomae_folder(path) is not None:
        return None
    if path is not None:
        return f"VideoMAE folder {path} not found or without config.json (a transformers VideoMAE folder is needed)"
    return missing_message(DEFAULT_VIDEOMAE)


class VideoMAEFeatures:
    """uint8 (B, T, H, W, 3) clips -> (B, hidden) float64 features, cd-fvd's definition (module docstring)."""

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 4):
        from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEModel

        folder = videomae_folder(path)
        if folder is None:
            raise MissingDataError(videomae_unavailable(path))
        self.path, self.sha256 = folder, weight_sha256(folder)
        self.device, self.batch_size = torch.device(device), batch_size
        config = self.config = VideoMAEConfig.from_pretrained(str(folder), local_files_only=True)
        classifier = "VideoMAEForVideoClassification" in (config.architectures or [])
        if classifier:
            model = VideoMAEForVideoClassification.from_pretrained(str(folder), local_files_only=True)
            self.encoder, self.fc_norm = model.videomae, model.fc_norm
        else:
            self.encoder, self.fc_norm = VideoMAEModel.from_pretrained(str(folder), local_files_only=True), None
        self.encoder.eval().to(self.device)
        if self.fc_norm is not None:
            self.fc_norm.eval().to(self.device)
        self.num_frames, self.size = int(config.num_frames), int(config.image_size)
        self.variant = (f"VideoMAE features ({'fc_norm of the ' if self.fc_norm is not None else ''}mean over patch "
                        f"tokens), first {self.num_frames} frames in [0,1] resized to {self.size}x{self.size}")

    def preprocess(self, frames) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> (B, num_frames, 3, size, size) float in [0, 1] (transformers' layout)."""
        x = torch.as_tensor(frames if isinstance(frames, torch.Tensor) else np.asarray(frames)).to(self.device)
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"expected uint8 (B, T, H, W, 3) clips, got {tuple(x.shape)}")
        if x.shape[1] < self.num_frames:
            raise ValueError(f"VideoMAE takes {self.num_frames} frames; the clips have {x.shape[1]}")
        b = x.shape[0]
        x = x[:, :self.num_frames].flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.view(b, self.num_frames, 3, self.size, self.size)

    @torch.no_grad()
    def __call__(self, frames) -> np.ndarray:
        out = []
        for s in range(0, len(frames), self.batch_size):
            x = self.preprocess(frames[s:s + self.batch_size])
            tokens = self.encoder(pixel_values=x).last_hidden_state
            feat = tokens.mean(dim=1)
            if self.fc_norm is not None:
                feat = F.layer_norm(feat, feat.shape[-1:], self.fc_norm.weight, self.fc_norm.bias,
                                    eps=float(self.config.layer_norm_eps))
            out.append(feat.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.hidden_size))


# -- conversion of the VideoMAE-v2 checkpoint cd-fvd uses ------------------------------------------------------
def _videomaev2_to_transformers(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    out = {
        "videomae.embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "videomae.embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "fc_norm.weight": state["fc_norm.weight"], "fc_norm.bias": state["fc_norm.bias"],
        "classifier.weight": state["head.weight"], "classifier.bias": state["head.bias"],
    }
    for i in range(depth):
        src, dst = f"blocks.{i}.", f"videomae.encoder.layer.{i}."
        q, k, v = state[src + "attn.qkv.weight"].chunk(3, dim=0)
        out.update({
            dst + "attention.attention.query.weight": q, dst + "attention.attention.key.weight": k,
            dst + "attention.attention.value.weight": v,
            dst + "attention.attention.query.bias": state[src + "attn.q_bias"],
            dst + "attention.attention.value.bias": state[src + "attn.v_bias"],
            dst + "attention.output.dense.weight": state[src + "attn.proj.weight"],
            dst + "attention.output.dense.bias": state[src + "attn.proj.bias"],
            dst + "intermediate.dense.weight": state[src + "mlp.fc1.weight"],
            dst + "intermediate.dense.bias": state[src + "mlp.fc1.bias"],
            dst + "output.dense.weight": state[src + "mlp.fc2.weight"],
            dst + "output.dense.bias": state[src + "mlp.fc2.bias"],
            dst + "layernorm_before.weight": state[src + "norm1.weight"],
            dst + "layernorm_before.bias": state[src + "norm1.bias"],
            dst + "layernorm_after.weight": state[src + "norm2.weight"],
            dst + "layernorm_after.bias": state[src + "norm2.bias"],
        })
    return out


def convert_videomaev2_checkpoint(src: str | Path, out_dir: str | Path, num_heads: int = 16,
                                  image_size: int = 224, num_frames: int = 16, layer_norm_eps: float = 1e-6) -> Path:
    """Write a VideoMAE-v2 fine-tuned checkpoint (VideoMAEv2 `VisionTransformer` keys, as cd-fvd loads it) as a
    transformers `VideoMAEForVideoClassification` folder. Shapes give every size except the number of heads."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(str(src), f"cannot be loaded as a weights-only checkpoint ({type(exc).__name__}: {exc}); "
                                  "re-save its state dict with torch.save(ckpt['module'], ...) first") from exc
    for key in ("model", "module"):
        if isinstance(ckpt, dict) and key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    if "patch_embed.proj.weight" not in ckpt or "fc_norm.weight" not in ckpt:
        raise DataError(str(src), "is not a VideoMAE-v2 fine-tuned checkpoint (no patch_embed.proj.weight / fc_norm)")
    proj = ckpt["patch_embed.proj.weight"]  # (hidden, 3, tubelet, patch, patch)
    depth = 1 + max(int(k.split(".")[1]) for k in ckpt if k.startswith("blocks."))
    config = VideoMAEConfig(
        hidden_size=int(proj.shape[0]), num_hidden_layers=depth, num_attention_heads=num_heads,
        intermediate_size=int(ckpt["blocks.0.mlp.fc1.weight"].shape[0]), hidden_act="gelu",
        image_size=image_size, patch_size=int(proj.shape[-1]), tubelet_size=int(proj.shape[2]),
        num_frames=num_frames, qkv_bias=True, qv_bias=True, use_mean_pooling=True, layer_norm_eps=layer_norm_eps,
        num_labels=int(ckpt["head.weight"].shape[0]), architectures=["VideoMAEForVideoClassification"])
    model = VideoMAEForVideoClassification(config)
    state = _videomaev2_to_transformers(ckpt, depth)
    expected = model.state_dict()
    for key in list(state):  # transformers 4.x keeps the q/v biases as attention.attention.q_bias / v_bias
        if key not in expected:
            alt = key.replace("query.bias", "q_bias").replace("value.bias", "v_bias")
            if alt in expected:
                state[alt] = state.pop(key)
    model.load_state_dict(state, strict=True)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    (out_dir / "conversion.json").write_text(json.dumps({"source": str(src), "num_heads": num_heads}, indent=1))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.metrics.cdfvd", description="content-debiased FVD tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="VideoMAE-v2 checkpoint (.pth) -> transformers VideoMAE folder")
    c.add_argument("checkpoint")
    c.add_argument("out_dir")
    c.add_argument("--num-heads", type=int, default=16, help="attention heads (16 for ViT-g/14, 12 for ViT-B)")
    c.add_argument("--image-size", type=int, default=224)
    c.add_argument("--num-frames", type=int, default=16)
    args = p.parse_args(argv)
    out = convert_videomaev2_checkpoint(args.checkpoint, args.out_dir, args.num_heads, args.image_size,
                                        args.num_frames)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
