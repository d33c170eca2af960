"""Configuration of the learned baselines: the family, the quantizer's knobs, the loss weights, and the named
configurations `python -m harness train --model <family> --config NAME` accepts.

Fairness: the backbone, its structured initialization, the training data, optimizer, schedule, steps and seed of
each named configuration are PyraTok's (read from models/pyratok/config.py, so they follow it), and the recon and
quantizer loss groups carry PyraTok's top-level weights (2.5 and 2.5); only the quantizer and its own terms (with
the weights of each family's reference implementation) differ. Every field can be overridden with
`--model-arg key=value`; training fields (`steps`, `lr`, ...) too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.tokenizer.backbone import BackboneConfig, WithBackbone

FAMILIES = ("lfq", "bsq", "vq", "rvq", "fsq")


@dataclass
class BaselineConfig(WithBackbone):
    family: str = "lfq"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    vae: str | None = None  # a local diffusers Wan VAE folder with pretrained weights (optional)
    init: str = "random"  # "random" | "downsample" (models/tokenizer/structured_init.py; ignored with `vae`)
    freeze: Any = None  # parameter-name prefixes kept frozen in training
    # binary families (LFQ, BSQ)
    bits: int = 16
    inv_temperature: float = 100.0  # LFQ: Open-MAGVIT2's 1/τ = 100; BSQ: bsq-vit's default 1
    group_size: int = 8  # BSQ entropy groups
    persample: str = "group"  # BSQ per-sample entropy: "group" | "analytical"
    gamma0: float = 1.0
    gamma: float = 1.0
    zeta: float = 1.0
    # codebook families (VQ, RVQ)
    codebook_size: int = 65536
    codebook_dim: int = 8
    stages: int = 1
    distance: str = "euclidean"  # "euclidean" | "cosine" (l2-normalized lookup)
    update: str = "ema"  # "ema" | "loss"
    ema_decay: float = 0.99
    dead_after: int = 50  # training steps a code may stay unused before it is restarted from batch features
    # FSQ
    levels: list[int] = field(default_factory=lambda: [8, 8, 8, 5, 5, 5])
    # loss weights: groups as PyraTok (w_recon, w_quant), terms inside as each family's reference
    w_recon: float = 2.5
    w_quant: float = 2.5
    w_l1: float = 1.0
    w_ssim: float = 1.0
    w_lpips: float = 1.0
    w_commit: float = 0.25
    w_entropy: float = 0.1
    w_codebook: float = 1.0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown baseline family {self.family!r}; known: {', '.join(FAMILIES)}")

    @property
    def bits_per_cell(self) -> int:
        import math

        if self.family in ("lfq", "bsq"):
            return self.bits
        if self.family == "fsq":
            return (math.prod(self.levels) - 1).bit_length()
        return self.stages * (self.codebook_size - 1).bit_length()


# each family's reference settings (see the quantizer modules' docstrings for the sources)
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "lfq": {"bits": 16, "inv_temperature": 100.0, "w_commit": 0.25, "w_entropy": 0.1},
    "bsq": {"bits": 16, "inv_temperature": 1.0, "group_size": 8, "w_commit": 0.0, "w_entropy": 0.1},
    "vq": {"codebook_size": 65536, "codebook_dim": 8, "stages": 1, "w_commit": 0.25},
    "rvq": {"codebook_size": 256, "codebook_dim": 8, "stages": 2, "w_commit": 0.25},
    "fsq": {"levels": [8, 8, 8, 5, 5, 5], "w_commit": 0.0, "w_entropy": 0.0},
}


def _pyratok_configs() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """PyraTok's named configurations: (backbone + init, training overrides)."""
    from models.pyratok.config import CONFIGS

    out = {}
    for name, (model_d, train_d) in CONFIGS.items():
        shared = {k: model_d[k] for k in ("backbone", "init", "vae") if k in model_d}
        if model_d.get("freeze"):  # PyraTok's quantizer levels -> the baseline's one quantizer projection
            freeze = model_d["freeze"]
            freeze = [freeze] if isinstance(freeze, str) else list(freeze)
            shared["freeze"] = list(dict.fromkeys("quantizer.project_in" if f.startswith("quantizer.") else f
                                                  for f in freeze))
        out[name] = (shared, dict(train_d))
    return out


def config_names() -> list[str]:
    return sorted(_pyratok_configs())


def get_config(family: str, name: str, model_overrides: dict[str, Any] | None = None,
               train_overrides: dict[str, Any] | None = None):
    """(BaselineConfig, models.pyratok.config.TrainConfig) of `family` under PyraTok's configuration `name`."""
    from models.pyratok.config import with_overrides

    configs = _pyratok_configs()
    if name not in configs:
        raise ValueError(f"unknown config {name!r} for {family}; known: {', '.join(sorted(configs))}")
    if family not in FAMILIES:
        raise ValueError(f"unknown baseline family {family!r}; known: {', '.join(FAMILIES)}")
    shared, train_d = configs[name]
    cfg = BaselineConfig.from_dict({"family": family, **shared, **FAMILY_DEFAULTS[family]})
    return with_overrides(cfg, train_d, model_overrides, train_overrides)
