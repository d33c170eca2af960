"""PyraTok's configuration: model, loss weights and training, with the named configurations (`tiny`, `paper`, and
the ablation variants) that `python -m harness train --config NAME` accepts.

Every field can be overridden with `--model-arg key=value`; the ablation knobs are `levels`, `codebook_bits`,
`align_levels`, `residual_stages` and `text_encoder`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from models.tokenizer.backbone import BackboneConfig, WithBackbone


@dataclass
class PyraTokConfig(WithBackbone):
    # backbone (the Wan-2.1-architecture causal VAE); `vae` = a local diffusers folder with pretrained weights
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    vae: str | None = None
    init: str = "random"  # "random" | "downsample" (models/tokenizer/structured_init.py; ignored with `vae`)
    colour_bits: int = 0  # with init="downsample": bit channels of the last level that start as the colour code (0:
    #                       all); the others start at zero, room for what the semantic trunk brings, and (when
    #                       the code width is the latent's, as in tiny-lang) unread by the decoder's read-out
    freeze: Any = None  # parameter-name prefixes kept frozen in training (the paper freezes the pretrained encoder)
    # LoRA in training (paper §3.2.3: r 16, alpha 32 in the encoder blocks); 0: none. Exported bundles are merged.
    lora_rank: int = 0
    lora_alpha: float = 32.0
    lora_targets: Any = field(default_factory=lambda: ["backbone.vae.encoder.down_blocks",
                                                       "backbone.vae.encoder.mid_block"])
    # LaPQ
    levels: int = 4
    codebook_bits: int = 16
    residual_stages: int = 1
    lapq_dim: int = 64
    lapq_heads: int = 4
    # the shallow levels' lateral from the tap (the last level's is always the paper's 1x1x1): kernel 1 and depth 1
    # is the paper's; a causal k x k x k conv stack lets a level whose tap has no motion features (a small model's
    # frozen area-downsample trunk) see motion and shape before it is aligned with text
    lateral_kernel: int = 1
    lateral_depth: int = 1
    # a semantic trunk beside the encoder feeding every level (models/pyratok/trunk.py; not in the paper): its width,
    # 0 = none (the paper's design), and the blocks it adds at the deepest grid
    semantic_trunk: int = 0
    semantic_trunk_depth: int = 2
    semantic_trunk_scale: int = 1  # the trunk reads the clip area-downsampled by this factor in space
    semantic_trunk_source: str = "own"  # "own": each level reads the trunk's output at its stride; "deepest": every
    #                                     level reads the deepest (the semantic one), resampled causally to its grid
    semantic_into: str = "lateral"  # where a level adds the trunk's projected features: "lateral" (before its norms)
    #                                 or "code" (its pre-sign values: a linear read-out of the trunk into the code,
    #                                 not squashed by the structured start's anchor-dominated norms)
    text_scale: float = 0.7  # the release's lapq_text_condition_scale (its code forces 0; here it is used)
    align_levels: Any = "all"  # "none" | "last" | "all" | [1-based levels]
    inv_temperature: float = 100.0
    # text
    text_encoder: str = "minilm"
    text_width: int | None = None  # the encoder's hidden size (filled in when the model is built)
    text_layer: int = -1  # hidden_states index (the release reads Qwen3's hidden_states[-4])
    text_max_tokens: int = 32
    text_dim: int = 256
    text_hidden: int = 512
    # loss weights (paper Appendix D) and the unit weights inside each group
    w_recon: float = 2.5
    recon_clips: int = 0  # clips of each batch decoded for the reconstruction terms (0: all); the rest train the
    #                       codebook, alignment and prior terms only, so a large alignment batch stays affordable
    w_codebook: float = 2.5
    w_ar: float = 1.5
    w_drift: float = 0.6
    w_l1: float = 1.0
    w_ssim: float = 1.0
    w_lpips: float = 1.0
    w_commit: float = 1.0
    w_entropy: float = 1.0
    w_hier: float = 1.0
    w_text_align: float = 1.0
    w_text_codebook: float = 1.0
    aux_warmup: int = 0  # steps over which the hierarchical, alignment and AR weights ramp up from 0
    # soft assignments for the KL terms (per-bit logits 2 z / kl_temperature); alignment formulation
    kl_temperature: float = 1.0
    align_mode: str = "contrastive"  # "contrastive" (strengthened, default) | "paper" (literal per-token KL)
    align_temperature: float = 0.1
    align_negatives: int = 32  # extra captions (text only) each clip is contrasted against
    align_pooling: str = "text"  # "text": text-conditioned pooling of token-caption cosines; "mean": the cosine of
    #                              the mean-pooled tokens, the pooling of the classification, retrieval and TAL tasks
    text_condition: float = 1.0  # share of captioned training clips whose LaPQ cross-attention sees the caption
    #                              (alignment always uses it); 0: learn alignment from text-free encoding, as evaluated
    # autoregressive prior
    ar_dim: int = 128
    ar_layers: int = 2
    ar_heads: int = 4
    ar_window: int = 256  # at most this many tokens per level in one training sequence
    # drift: KL to a frozen reference ("auto": a frozen copy of the pretrained encoder when `vae` is given, else
    # "none"; "frozen-encoder"; or a local image-model folder, e.g. DINOv3 as the paper: models/pyratok/drift.py)
    drift_reference: str = "auto"
    drift_width: int | None = None  # an image-model reference's width (filled in from its config.json)
    drift_temperature: float = 1.0
    # training-time masking (paper: 30% of frames, MAE-style cosine-scheduled spatial masking)
    mask_prob: float = 0.5
    mask_frames: float = 0.3
    mask_spatial_max: float = 0.5
    mask_patch: int = 8


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 4
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    clip_frames: int = 9
    crop: Any = 64  # an int, or a list to draw from per step
    resize: int = 128  # short side before cropping: the scale of the ucf101-recon protocol
    scene_fraction: float = 0.5  # share of each batch rendered on the fly with captions (tasks/mini/scenes.py)
    caption_dropout: float = 0.2  # captioned clips sometimes trained without text, so text-free encoding works
    ar_every: int = 1
    log_every: int = 10
    save_every: int = 100
    seed: int = 0
    threads: int = 0  # torch threads (0: leave torch's default)
    init_from: str | None = None  # a checkpoint folder or bundle stem whose weights start a fresh run (name + shape)
    scene_time_stride: int = 1  # scene clips take every s-th frame, s drawn from 1..this (evaluations sample strided)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TINY_BACKBONE = BackboneConfig(base_dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1)

CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (model overrides, train overrides)
    # the base of the bundled checkpoint's recipe (`tiny-lang`, below) and of the ablations; until 2026-12-05 the
    # bundle itself (a colour codec, 4 bits x 5 stages; docs/pyratok.md "Training record"): structured area-downsample
    # start, the encoder side of the reconstruction path kept frozen (the paper freezes its pretrained encoder),
    # entropy weight 0.1 (Open-MAGVIT2 / BSQ) instead of the unit weight
    "tiny": ({"backbone": asdict(TINY_BACKBONE), "lapq_dim": 32, "lapq_heads": 2, "text_dim": 128,
              "text_hidden": 256, "ar_dim": 64, "ar_layers": 2, "ar_heads": 2, "ar_window": 128,
              "aux_warmup": 600, "mask_prob": 0.1, "init": "downsample", "w_text_align": 0.5, "w_entropy": 0.1,
              "codebook_bits": 4, "residual_stages": 5,
              "freeze": ["backbone.vae.encoder", "backbone.vae.quant_conv", "quantizer.blocks.3"]},
             {"crop": [32, 48, 64], "warmup": 50, "steps": 1000, "lr": 1e-4, "save_every": 50, "threads": 1}),
    # the paper's configuration on the release backbone (Wan 2.1 VAE, 4 levels, 16-bit shared codebook): the encoder
    # frozen with LoRA r 16, alpha 32 in its blocks (§3.2.3); the decoder trains (the paper's "frozen decoder" could
    # not read sign codes it never saw; `--model-arg freeze=...` adds it)
    "paper": ({"lapq_dim": 256, "lapq_heads": 8, "text_dim": 256, "text_hidden": 1024, "ar_dim": 512,
               "ar_layers": 6, "ar_heads": 8, "ar_window": 1024, "lora_rank": 16, "lora_alpha": 32.0,
               "freeze": ["backbone.vae.encoder", "backbone.vae.quant_conv"]},
              {"lr": 1e-5, "batch_size": 4, "clip_frames": 17, "crop": 256, "resize": 256, "steps": 30000}),
}
# Second stages, run from a first stage's weights (`--model-arg init_from=<checkpoint>`). `semantic` (experimental,
# docs/pyratok.md "A semantic second stage") trains what the zero-shot tasks read and reconstruction does not (the
# shallow levels, now with causal 3x3x3 conv laterals, the text path, the prior) with everything on the decoded path
# frozen (encoder, quant_conv, the last level, the null text token: the reconstruction stays bit-identical); no
# decoding; alignment learned from text-free encodings of whole 128x128 clips, scored by mean pooling as the tasks.
STAGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "semantic": ({"lateral_kernel": 3, "lateral_depth": 2,
                  "freeze": ["backbone", "quantizer.blocks.last", "quantizer.semantic_in.last", "text_adapter.null"],
                  "w_recon": 0.0,
                  "text_condition": 0.0, "align_pooling": "mean", "aux_warmup": 0, "mask_prob": 0.0,
                  "w_text_align": 1.0},
                 {"steps": 1500, "lr": 1e-3, "warmup": 50, "crop": 128, "clip_frames": 17, "batch_size": 8,
                  "scene_fraction": 1.0, "caption_dropout": 0.1, "scene_time_stride": 4}),
}
# `lang` (the bundled checkpoint's recipe, docs/pyratok.md "Training record"): the paper's 16-bit code at every level
# (2 residual stages; the structured start gives 8 of the 16 bit channels the colour code and leaves 8 at zero), a
# semantic trunk pretrained on captioned scenes and kept frozen as the paper keeps its pretrained encoder; every
# level's code read-out of it and the text path start from that pretraining's heads (`init_from`: the file
# scripts/motion_trunk_study.py --pyratok-start writes); everything the decoder reads stays frozen but the read-out;
# alignment from text-free encodings pooled by the mean, as the tasks read them; a batch of 4 UCF-101 clips
# (decoded: the reconstruction terms keep the read-out off the colour channels) and 16 captioned scenes (aligned).
STAGES["lang"] = ({"codebook_bits": 16, "residual_stages": 2, "colour_bits": 8, "semantic_trunk": 32,
                   "semantic_trunk_scale": 2, "semantic_trunk_source": "deepest",
                   "semantic_into": "code",
                   "freeze": ["backbone", "trunk", "quantizer.blocks.last"],
                   "text_condition": 0.0, "align_pooling": "mean", "recon_clips": 4, "w_text_align": 1.0,
                   "aux_warmup": 0},
                  {"steps": 200, "lr": 3e-4, "warmup": 20, "batch_size": 20, "scene_fraction": 0.8, "crop": 96,
                   "clip_frames": 9, "caption_dropout": 0.1, "scene_time_stride": 4, "threads": 2})
ABLATIONS: dict[str, dict[str, Any]] = {
    **{f"levels{n}": {"levels": n} for n in (1, 2, 3, 4)},
    **{f"bits{k}": {"codebook_bits": k} for k in (10, 14, 18)},
    **{f"align-{a}": {"align_levels": a} for a in ("none", "last", "all")},
    "residual2": {"residual_stages": 2},
}


def config_names() -> list[str]:
    return sorted(list(CONFIGS) + [f"{base}-{ab}" for base in CONFIGS for ab in (*ABLATIONS, *STAGES)])


def get_config(name: str, model_overrides: dict[str, Any] | None = None,
               train_overrides: dict[str, Any] | None = None) -> tuple[PyraTokConfig, TrainConfig]:
    """A named configuration ("tiny", "paper", "tiny-levels2", "paper-bits18", ...) with overrides applied."""
    base, _, variant = name.partition("-")
    if base not in CONFIGS or (variant and variant not in ABLATIONS and variant not in STAGES):
        raise ValueError(f"unknown PyraTok config {name!r}; known: {', '.join(config_names())}")
    model_d, train_d = CONFIGS[base]
    stage_model, stage_train = STAGES.get(variant, ({}, {}))
    cfg = PyraTokConfig.from_dict(model_d).replace(**ABLATIONS.get(variant, {}), **stage_model)
    return with_overrides(cfg, {**train_d, **stage_train}, model_overrides, train_overrides)


def with_overrides(cfg, train_d: dict[str, Any], model_overrides: dict[str, Any] | None,
                   train_overrides: dict[str, Any] | None):
    """(cfg, TrainConfig) with `--model-arg` overrides applied; a training field given as a model arg goes to the
    training configuration. Shared by PyraTok and the learned baselines, whose configurations read PyraTok's."""
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    mo, to = dict(model_overrides or {}), dict(train_overrides or {})
    for k in list(mo):
        if k in train_fields:
            to[k] = mo.pop(k)
    if mo:
        cfg = cfg.replace(**{k: _coerce(getattr(cfg, k, None), v) for k, v in mo.items()})
    base_train = TrainConfig(**train_d)
    return cfg, dataclasses.replace(base_train, **{k: _coerce(getattr(base_train, k), v) for k, v in to.items()})


def _coerce(default: Any, value: Any) -> Any:
    """YAML reads "3e-4" as a string (YAML 1.1 wants "3.0e-4"): give numeric fields numbers."""
    if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
        return type(default)(float(value)) if isinstance(default, float) else int(float(value))
    return value
