"""The learned baselines as models: the shared TokenizerModel (backbone taps -> quantizer -> post-quantization
projection -> decoder) with one of the LFQ/BSQ/VQ/RVQ/FSQ quantizers on the latent, and the training objective

    L = w_recon (w_l1 L1 + w_ssim (1 - SSIM) + w_lpips LPIPS) + w_quant (w_commit commit + w_entropy entropy
        + w_codebook codebook)

with PyraTok's group weights and each family's own term weights (config.py). Entries of `training_losses` other
than the weighted terms (sample/codebook entropies, restarted codes, codes used in the batch) are logged only.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.baselines.tokenizers.base import LatentQuantizer
from models.baselines.tokenizers.config import BaselineConfig
from models.tokenizer.backbone import WanBackbone
from models.tokenizer.model import TokenizerModel

WEIGHTED = ("commitment", "entropy", "codebook")


def build_quantizer(cfg: BaselineConfig, backbone: WanBackbone) -> LatentQuantizer:
    z, stride = backbone.z_dim, backbone.tap_strides["latent"]
    if cfg.family == "lfq":
        from models.baselines.tokenizers.lfq import LFQ

        return LFQ(z, cfg.bits, cfg.inv_temperature, stride)
    if cfg.family == "bsq":
        from models.baselines.tokenizers.bsq import BSQ

        return BSQ(z, cfg.bits, cfg.group_size, cfg.inv_temperature, cfg.persample, cfg.gamma0, cfg.gamma,
                   cfg.zeta, stride)
    if cfg.family in ("vq", "rvq"):
        from models.baselines.tokenizers.vq import ResidualVQ

        return ResidualVQ(z, cfg.codebook_size, cfg.codebook_dim, cfg.stages, cfg.distance, cfg.update,
                          cfg.ema_decay, cfg.dead_after, stride)
    if cfg.family == "fsq":
        from models.baselines.tokenizers.fsq import FSQ

        return FSQ(z, cfg.levels, stride)
    raise ValueError(f"unknown baseline family {cfg.family!r}")


class BaselineTokenizer(TokenizerModel):
    def __init__(self, cfg: BaselineConfig):
        backbone = WanBackbone.from_config(cfg.backbone, cfg.vae)
        super().__init__(backbone, build_quantizer(cfg, backbone))
        self.cfg = cfg
        self.quantizer: LatentQuantizer

    def training_losses(self, video: torch.Tensor, captions: list[str | None], negatives: list[str],
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """All terms for one batch (captions and negatives are unused: these tokenizers have no text path)."""
        cfg = self.cfg
        recon, q = self(video, clamp=False)
        terms = dict(self.recon_terms(recon, video))
        zero = video.new_zeros(())
        for k, v in q.losses.items():
            terms[k] = v if k in WEIGHTED else v.detach().to(video.device)
        for k in WEIGHTED:
            terms.setdefault(k, zero)
        recon_total = cfg.w_l1 * terms["l1"] + cfg.w_ssim * terms["ssim"] + cfg.w_lpips * terms.get("lpips", zero)
        quant_total = (cfg.w_commit * terms["commitment"] + cfg.w_entropy * terms["entropy"]
                       + cfg.w_codebook * terms["codebook"])
        terms["total"] = cfg.w_recon * recon_total + cfg.w_quant * quant_total
        terms["_recon"] = recon.detach()
        return terms

    @torch.no_grad()
    def structured_init(self, calib: torch.Tensor) -> float:
        """Start from the area-downsampling baseline, as PyraTok's tiny configuration does: the backbone as
        `init_backbone_as_downsample`, the quantizer's projection (and codebooks) so the codes carry the colours,
        the post-quantization projection as an identity embedding, and a least-squares read-out from the quantized
        values to the colours in the decoder's first conv. Returns the read-out's RMS error."""
        from models.tokenizer.structured_init import init_backbone_as_downsample, init_binary_readout

        init_backbone_as_downsample(self.backbone.vae)
        was_training = self.training
        self.eval()
        latent = self.backbone.encode_taps(calib, ["latent"])["latent"]
        self.quantizer.structured_init(latent)
        if isinstance(self.post_quant, nn.Conv3d):
            w = self.post_quant.weight
            w.zero_()
            self.post_quant.bias.zero_()
            for c in range(min(w.shape[0], w.shape[1])):
                w[c, c, 0, 0, 0] = 1.0
        err = init_binary_readout(self, calib)  # generic: any quantized value, read out linearly
        self.train(was_training)
        return err
