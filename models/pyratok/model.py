"""PyraTok: the Wan causal VAE backbone, LaPQ (a pyramid of language-aligned binary quantizers), the text path, the
global autoregressive prior and the drift reference, with the paper's training objective (Appendix D):

    L = 2.5 L_recon + 2.5 L_codebook + 1.5 L_AR + 0.6 L_drift
    L_recon    = L1 + (1 - SSIM) + LPIPS (when its weights exist)
    L_codebook = Σ_l [commitment + entropy] + hierarchical KL + text-conditioned alignment + text-codebook alignment

The decoder reads the last level. `embed_text` maps text into the code space shared by all levels (through the
trained `text_to_code` projection), so cosine(embed_text(name), features(video, level)) is a zero-shot score.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from models.pyratok.config import PyraTokConfig
from models.pyratok.lapq import LaPQ
from models.pyratok.losses import (contrastive_text_alignment, drift_kl, hierarchical_kl, mask_video,
                                   paper_text_alignment, text_codebook_alignment)
from models.pyratok.prior import HierarchyPrior
from models.pyratok.text import FrozenTextEncoder, TextAdapter
from models.pyratok.trunk import SemanticTrunk
from models.tokenizer.backbone import WanBackbone
from models.tokenizer.model import TokenizerModel
from models.tokenizer.quantizer import QuantizerOutput, TextContext

DRIFT_TAP = "mid"


def _semantic_channels(trunk: SemanticTrunk, backbone: WanBackbone, source: str) -> dict[tuple[int, int, int], int]:
    """The width of what the trunk gives each tap stride (its strides are the encoder's, so every tap has one)."""
    if source not in ("own", "deepest"):
        raise ValueError(f"semantic_trunk_source must be 'own' or 'deepest', got {source!r}")
    return {tuple(s): trunk.channels_at(trunk.strides[-1] if source == "deepest" else s)
            for s in backbone.tap_strides.values()}


class PyraTokModel(TokenizerModel):
    def __init__(self, cfg: PyraTokConfig, text_encoder: FrozenTextEncoder | None = None):
        backbone = WanBackbone.from_config(cfg.backbone, cfg.vae)
        trunk = (SemanticTrunk(cfg.semantic_trunk, list(backbone.vae.config.temperal_downsample),
                               cfg.semantic_trunk_depth, input_scale=cfg.semantic_trunk_scale)
                 if cfg.semantic_trunk else None)
        quantizer = LaPQ(backbone.tap_channels, backbone.tap_strides, levels=cfg.levels, bits=cfg.codebook_bits,
                         residual_stages=cfg.residual_stages, dim=cfg.lapq_dim, heads=cfg.lapq_heads,
                         text_dim=cfg.text_dim, align_levels=cfg.align_levels, text_scale=cfg.text_scale,
                         inv_temperature=cfg.inv_temperature, lateral_kernel=cfg.lateral_kernel,
                         lateral_depth=cfg.lateral_depth,
                         semantic_channels=(_semantic_channels(trunk, backbone, cfg.semantic_trunk_source)
                                            if trunk is not None else None),
                         semantic_into=cfg.semantic_into)
        super().__init__(backbone, quantizer)
        self.trunk = trunk
        self._text_encoder = text_encoder
        self.cfg = cfg
        if cfg.text_width is None:
            self.cfg = cfg = cfg.replace(text_width=self.text_encoder.width)
        self.text_adapter = TextAdapter(cfg.text_width, cfg.text_dim, cfg.text_hidden)
        self.text_to_code = nn.Linear(cfg.text_dim, cfg.codebook_bits)
        self.prior = HierarchyPrior(cfg.codebook_bits * cfg.residual_stages, cfg.text_dim, cfg.levels, cfg.ar_dim,
                                    cfg.ar_layers, cfg.ar_heads, cfg.ar_window)
        self._drift_ref: list = []  # a frozen reference encoder, kept out of the module tree (never saved)
        self.train_step = 0  # set by the training loop (alignment warm-up)
        if self.drift_source() == "frozen-encoder":
            self.set_drift_reference(copy.deepcopy(self.backbone))
        # an image-model reference (models/pyratok/drift.py) has its own width: the mid features are projected onto
        # it; the width is kept in the configuration, so a bundle builds without the reference's folder
        if self.drift_source() == "image-model" and cfg.drift_width is None:
            from models.pyratok.drift import reference_width

            self.cfg = cfg = cfg.replace(drift_width=reference_width(cfg.drift_reference))
        self.drift_proj = (nn.Conv3d(backbone.tap_channels[DRIFT_TAP], cfg.drift_width, 1)
                           if self.drift_source() == "image-model" else None)

    def quantize(self, video: torch.Tensor, text: TextContext | None = None) -> QuantizerOutput:
        """The encoder taps (and the semantic trunk's features, when configured) through LaPQ."""
        feats = self.backbone.encode_taps(video, self.quantizer.taps)
        return self.quantizer([feats[t] for t in self.quantizer.taps], text, self.semantic_features(video))

    def semantic_features(self, video: torch.Tensor) -> dict[tuple[int, int, int], torch.Tensor] | None:
        """What the semantic trunk gives each level's stride (None without a trunk); with source "deepest" every
        stride gets the deepest output (LaPQ resamples it causally onto the level's grid)."""
        if self.trunk is None:
            return None
        out = self.trunk(video)
        if self.cfg.semantic_trunk_source == "deepest":
            deepest = out[self.trunk.strides[-1]]
            out = {s: deepest for s in out}
        return out

    # -- text ----------------------------------------------------------------------------------------------------
    @property
    def text_encoder(self) -> FrozenTextEncoder:
        if self._text_encoder is None:
            self._text_encoder = FrozenTextEncoder(self.cfg.text_encoder, layer=self.cfg.text_layer,
                                                   max_tokens=self.cfg.text_max_tokens)
        return self._text_encoder

    def text_context(self, captions: list[str | None], device=None) -> TextContext:
        """Cross-attention context for a batch; clips without a caption get the learned null token."""
        device = device or next(self.parameters()).device
        has = torch.tensor([c is not None for c in captions], device=device)
        if not bool(has.any()):
            return self.text_adapter.null_context(len(captions), device)
        tokens, mask, pooled = self.text_encoder.encode([c or "" for c in captions])
        if tokens.shape[-1] != self.cfg.text_width:
            raise ValueError(f"text encoder {self.cfg.text_encoder} has width {tokens.shape[-1]}, the checkpoint "
                             f"was trained with width {self.cfg.text_width}")
        return self.text_adapter(tokens.to(device), mask.to(device), pooled.to(device), has)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """(N, k) text embeddings in the quantized-token space shared by all levels."""
        device = next(self.parameters()).device
        _, _, pooled = self.text_encoder.encode(list(texts))
        return self.text_to_code(self.text_adapter.mlp(pooled.to(device)))

    # -- drift reference -------------------------------------------------------------------------------------
    def drift_source(self) -> str:
        """"frozen-encoder", "none" or "image-model" (`drift_reference` names a local image-model folder)."""
        ref = self.cfg.drift_reference
        if ref == "auto":
            return "frozen-encoder" if self.cfg.vae else "none"
        return ref if ref in ("frozen-encoder", "none") else "image-model"

    def load_drift_reference(self) -> None:
        """Load an image-model reference from its folder (training only: evaluation never needs it)."""
        if self.drift_source() == "image-model":
            from models.pyratok.drift import ImageModelReference

            self.set_drift_reference(ImageModelReference(self.cfg.drift_reference))

    def set_drift_reference(self, reference) -> None:
        """A module with `encode_taps(video, [tap])` (a frozen copy of the pretrained encoder, same channels) or
        with `features(video, grid)` (an image model, compared through `drift_proj`)."""
        self._drift_ref.clear()
        if reference is not None:
            reference.requires_grad_(False).eval()
            self._drift_ref.append(reference)

    # -- training ------------------------------------------------------------------------------------------------
    def training_losses(self, video: torch.Tensor, captions: list[str | None], negatives: list[str],
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """All terms of the objective for one batch (unweighted, plus `total`, the weighted sum)."""
        cfg = self.cfg
        device = video.device
        text = self.text_context(captions, device)
        cond = text  # what LaPQ's cross-attention sees: the caption for a share `text_condition` of the clips
        if cfg.text_condition < 1.0:
            keep = torch.rand(len(captions), generator=generator) < cfg.text_condition
            cond = self.text_context([c if k else None for c, k in zip(captions, keep.tolist())], device)
        x_in = video
        masked = cfg.mask_prob > 0 and float(torch.rand(1, generator=generator)) < cfg.mask_prob
        if masked:
            x_in = mask_video(video, generator, cfg.mask_frames, cfg.mask_spatial_max, cfg.mask_patch)
        taps = list(self.quantizer.taps) + ([DRIFT_TAP] if self._drift_ref and cfg.w_drift > 0 else [])
        feats = self.backbone.encode_taps(x_in, list(dict.fromkeys(taps)))
        semantic = self.semantic_features(x_in)
        q: QuantizerOutput = self.quantizer([feats[t] for t in self.quantizer.taps], cond, semantic)
        zero = video.new_zeros(())
        recon = None
        if cfg.w_recon > 0:  # the first `recon_clips` clips are decoded (all with 0): decoding is the costly part
            n = cfg.recon_clips or len(video)
            recon = self.decode_value(q.quantized[:n], clamp=False)
            terms = dict(self.recon_terms(recon, video[:n]))
        else:  # a stage that trains only the shallow levels and the text path does not decode
            terms = {"l1": zero, "ssim": zero}
        terms["commitment"], terms["entropy"] = q.losses["commitment"], q.losses["entropy"]
        terms["hierarchical"] = hierarchical_kl(q.levels, cfg.kl_temperature) if len(q.levels) > 1 else zero
        terms.update(self._alignment(q, text, captions, negatives))
        terms["ar"] = self.prior.loss(text, [torch.cat(lv.stage_codes, 1) for lv in q.levels], generator) \
            if cfg.w_ar > 0 else zero
        if self._drift_ref and cfg.w_drift > 0:
            mid, reference = feats[DRIFT_TAP], self._drift_ref[0]
            with torch.no_grad():
                ref = (reference.features(x_in, tuple(mid.shape[2:])) if hasattr(reference, "features")
                       else reference.encode_taps(x_in, [DRIFT_TAP])[DRIFT_TAP])
            if self.drift_proj is not None:
                mid = self.drift_proj(mid)
            terms["drift"] = drift_kl(mid, ref, cfg.drift_temperature)
        else:
            terms["drift"] = zero
        # curriculum: the terms that reshape the codes (hierarchy, alignment, AR) ramp in while reconstruction forms
        ramp = min(1.0, self.train_step / cfg.aux_warmup) if cfg.aux_warmup else 1.0
        recon_total = cfg.w_l1 * terms["l1"] + cfg.w_ssim * terms["ssim"] + cfg.w_lpips * terms.get("lpips", zero)
        codebook = (cfg.w_commit * terms["commitment"] + cfg.w_entropy * terms["entropy"]
                    + ramp * (cfg.w_hier * terms["hierarchical"] + cfg.w_text_align * terms["text_align"]
                              + cfg.w_text_codebook * terms["text_codebook"]))
        terms["total"] = (cfg.w_recon * recon_total + cfg.w_codebook * codebook + ramp * cfg.w_ar * terms["ar"]
                          + cfg.w_drift * terms["drift"])
        if recon is not None:
            terms["_recon"] = recon.detach()
        terms["masked"] = torch.tensor(float(masked))
        return terms

    def _alignment(self, q: QuantizerOutput, text: TextContext, captions: list[str | None],
                   negatives: list[str]) -> dict[str, torch.Tensor]:
        zero = q.quantized.new_zeros(())
        rows = [i for i, c in enumerate(captions) if c is not None]
        levels = self.quantizer.text_levels
        if not rows or not levels:
            return {"text_align": zero, "text_codebook": zero}
        own_caps = [captions[i] for i in rows]
        e_own = self.text_to_code(text.pooled[rows])
        align, tc = zero, zero
        if self.cfg.align_mode == "contrastive":
            pool = list(dict.fromkeys(own_caps + [n for n in negatives if n not in own_caps]))
            _, _, raw = self.text_encoder.encode(pool)
            raw = raw.to(e_own.device)
            e_all = self.text_to_code(self.text_adapter.mlp(raw))
            own = torch.tensor([pool.index(c) for c in own_caps], device=e_own.device)
        for lv in levels:
            z = q.levels[lv].z[rows]
            if self.cfg.align_mode == "contrastive":
                align = align + contrastive_text_alignment(z, e_all, own, raw, self.cfg.align_temperature,
                                                           pooling=self.cfg.align_pooling)
            elif self.cfg.align_mode == "paper":
                align = align + paper_text_alignment(z, e_own, self.cfg.kl_temperature)
            else:
                raise ValueError(f"align_mode must be 'contrastive' or 'paper', got {self.cfg.align_mode!r}")
            tc = tc + text_codebook_alignment(z, e_own, self.cfg.kl_temperature)
        return {"text_align": align / len(levels), "text_codebook": tc / len(levels)}
