"""`python -m harness train --model lfq|bsq|vq|rvq|fsq --config tiny`: the learned baselines' trainer.

The same pieces as PyraTok's trainer (models/pyratok/train.py): its named configuration's backbone, structured
initialization, data mixture (the requested data set plus procedural scenes at the same fraction), loop
(models/tokenizer/train.py: AdamW, warm-up + cosine, clipping, resumable safetensors checkpoints, log.jsonl) and
seed. `--export STEM` writes the bundle (STEM.safetensors + STEM.json) that the adapters load; training-only
buffers (EMA statistics, idle counters) are left out of it, and `--model-arg half=true` stores float16 weights.
"""
from __future__ import annotations

import functools
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from harness.io import write_json
from models.baselines.tokenizers.config import BaselineConfig, get_config
from models.tokenizer.checkpoint import load_weights, read_checkpoint_info
from models.tokenizer.train import LoopConfig, run_training

TRAINING_ONLY = ("ema_count", "ema_sum", "idle")  # buffer names an inference bundle leaves out


def is_training_only(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in TRAINING_ONLY


def loop_config(tcfg, time_limit_s: float = 0.0) -> LoopConfig:
    return LoopConfig(steps=tcfg.steps, batch_size=tcfg.batch_size, lr=tcfg.lr, min_lr_ratio=tcfg.min_lr_ratio,
                      warmup=tcfg.warmup, weight_decay=tcfg.weight_decay, grad_clip=tcfg.grad_clip,
                      clip_frames=tcfg.clip_frames, crop=tcfg.crop, resize=tcfg.resize,
                      caption_dropout=tcfg.caption_dropout, negatives=0, log_every=tcfg.log_every,
                      save_every=tcfg.save_every, seed=tcfg.seed, threads=tcfg.threads, time_limit_s=time_limit_s)


def calibration_batch(mixture, tcfg) -> torch.Tensor:
    """8 clips (17 frames, 64x64) from the training sources, drawn as PyraTok's structured init draws them."""
    import numpy as np

    from harness.video import to_model_input

    rng = np.random.default_rng([tcfg.seed, 99])
    clips = []
    for name, n in mixture.counts(8).items():
        clips += [mixture.sources[name].sample(rng, 17, 64, tcfg.resize) for _ in range(n)]
    return to_model_input(torch.stack([c.frames for c in clips]))


def export_bundle(checkpoint_dir: str | Path, out_stem: str | Path, half: bool = False) -> tuple[Path, Path]:
    """A training folder -> <stem>.safetensors (inference weights) + <stem>.json (config and training record)."""
    from models.baselines.tokenizers.model import BaselineTokenizer

    info = read_checkpoint_info(checkpoint_dir)
    model = BaselineTokenizer(BaselineConfig.from_dict(info["config"]))
    load_weights(model, Path(checkpoint_dir) / "model.safetensors")
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_suffix(".safetensors")
    from safetensors.torch import save_file

    from harness.io import atomic_path

    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
             for k, v in model.state_dict().items() if not is_training_only(k)}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": "pyratok-bench", "config": json.dumps(info["config"])})
    meta = {k: v for k, v in info.items() if k != "rng"}
    meta.update(weights=weights.name, dtype="float16" if half else "float32")
    write_json(stem.with_suffix(".json"), meta)
    return weights, stem.with_suffix(".json")


def train(family: str, config: str = "tiny", data: str = "ucf101", data_root: str | None = None,
          out: str | None = None, model_args: dict[str, Any] | None = None, resume: bool = True,
          progress: bool = True, cache_root: str | None = None, device: str = "cpu", time_limit_min: float = 0.0,
          export: str | None = None, **_: Any) -> int:
    from models.baselines.tokenizers.model import BaselineTokenizer
    from models.pyratok.train import apply_freeze, build_data
    from models.tokenizer.recon_loss import LPIPSLoss

    model_args = dict(model_args or {})
    half = bool(model_args.pop("half", False))
    cfg, tcfg = get_config(family, config, model_args)
    out_dir = Path(out or f"runs/{family}-{config}")
    torch.manual_seed(tcfg.seed)
    model = BaselineTokenizer(cfg)
    model.lpips = LPIPSLoss()
    info = {"model": family, "config_name": config, "config": cfg.to_dict(), "train": tcfg.to_dict(), "data": data,
            "data_root": data_root, "command": " ".join(sys.argv),
            "lpips": {"used": model.lpips.available, "reason": model.lpips.reason}, "torch": torch.__version__,
            "machine": platform.machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    resuming = resume and (out_dir / "config.json").exists()
    if resuming:
        prev = read_checkpoint_info(out_dir)
        if prev.get("config") != info["config"]:
            raise ValueError(f"{out_dir} holds a checkpoint of a different configuration; use another --out or "
                             "--no-resume")
        info["started"] = prev.get("started", info["started"])
        info["init"] = prev.get("init")
    print(f"[train] {family} {config}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{cfg.bits_per_cell} bits per latent cell; LPIPS "
          f"{'on' if model.lpips.available else 'off: ' + model.lpips.reason}", file=sys.stderr)
    frozen = apply_freeze(model, cfg.freeze)
    if frozen:
        info["frozen_parameters"] = frozen
    mixture = build_data(data, tcfg, data_root, cache_root)
    if not resuming and cfg.init == "downsample" and not cfg.vae:
        err = model.structured_init(calibration_batch(mixture, tcfg))
        info["init"] = {"kind": "downsample", "readout_rms": err}
        print(f"[train] structured init (area-downsample start), read-out RMS {err:.4f}", file=sys.stderr)
    summary = run_training(model, info, loop_config(tcfg, time_limit_min * 60), mixture, out_dir, resume, progress,
                           log=lambda m: print(m, file=sys.stderr), device=device)
    print(f"[train] step {summary['step']} in {summary['elapsed_s']:.0f} s -> {out_dir}", file=sys.stderr)
    if export:
        w, j = export_bundle(out_dir, export, half=half)
        print(f"[train] exported {w} and {j}", file=sys.stderr)
    return 0


train_lfq = functools.partial(train, "lfq")
train_bsq = functools.partial(train, "bsq")
train_vq = functools.partial(train, "vq")
train_rvq = functools.partial(train, "rvq")
train_fsq = functools.partial(train, "fsq")
