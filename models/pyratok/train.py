"""`python -m harness train --model pyratok --config tiny --data ucf101`: PyraTok's trainer entry point.

It turns a named configuration (models/pyratok/config.py) plus --model-arg overrides into a PyraTokModel, mixes the
requested data set with captioned procedural scenes, and runs the shared loop (models/tokenizer/train.py). `--export`
writes the final weights and config as a bundle (a .safetensors and a .json with the same stem), the format of
models/pyratok/weights/.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from harness.io import write_json
from models.pyratok.config import PyraTokConfig, TrainConfig, get_config
from models.tokenizer.checkpoint import read_checkpoint_info, save_weights
from models.tokenizer.data import ClipMixture, build_source
from models.tokenizer.lora import add_lora, has_lora_keys, lora_parameters, merge_lora_state
from models.tokenizer.train import LoopConfig, run_training


def build_data(data: str, tcfg: TrainConfig, data_root: str | None, cache_root: str | None) -> ClipMixture:
    """`data` names video sources ("ucf101", "scenes" or "ucf101,scenes"); captioned scenes are mixed in at
    tcfg.scene_fraction unless they are named explicitly."""
    import os

    names = [n.strip() for n in data.split(",") if n.strip()]
    sources, fractions = {}, {}
    seed = tcfg.seed + 1000 * int(os.environ.get("RANK", 0))  # every DDP rank draws its own clips
    for n in names:
        kwargs = ({"seed": seed, "time_stride": tcfg.scene_time_stride} if n == "scenes"
                  else {"data_root": data_root, "cache_root": cache_root})
        sources[n] = build_source(n, **kwargs)
    video_names = [n for n in names if n != "scenes"]
    if "scenes" not in names and tcfg.scene_fraction > 0:
        sources["scenes"] = build_source("scenes", seed=seed, time_stride=tcfg.scene_time_stride)
    scene_share = tcfg.scene_fraction if video_names else 1.0
    for n in video_names:
        fractions[n] = (1 - scene_share) / len(video_names)
    if "scenes" in sources:
        fractions["scenes"] = scene_share
    return ClipMixture(sources, fractions, seed=seed)


def loop_config(cfg: PyraTokConfig, tcfg: TrainConfig, time_limit_s: float = 0.0) -> LoopConfig:
    negatives = cfg.align_negatives if (cfg.align_mode == "contrastive" and cfg.align_levels != "none") else 0
    return LoopConfig(steps=tcfg.steps, batch_size=tcfg.batch_size, lr=tcfg.lr, min_lr_ratio=tcfg.min_lr_ratio,
                      warmup=tcfg.warmup, weight_decay=tcfg.weight_decay, grad_clip=tcfg.grad_clip,
                      clip_frames=tcfg.clip_frames, crop=tcfg.crop, resize=tcfg.resize,
                      caption_dropout=tcfg.caption_dropout, negatives=negatives, log_every=tcfg.log_every,
                      save_every=tcfg.save_every, seed=tcfg.seed, threads=tcfg.threads, time_limit_s=time_limit_s)


def export_bundle(checkpoint_dir: str | Path, out_stem: str | Path, half: bool = False) -> tuple[Path, Path]:
    """checkpoint folder -> <stem>.safetensors + <stem>.json (config, training record), for models/pyratok/weights."""
    from models.pyratok.model import PyraTokModel
    from models.tokenizer.checkpoint import load_weights

    info = read_checkpoint_info(checkpoint_dir)
    cfg = PyraTokConfig.from_dict(info["config"])
    model = PyraTokModel(cfg)
    load_weights(model, Path(checkpoint_dir) / "model.safetensors")
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_suffix(".safetensors")
    save_weights(model, weights, metadata={"format": "pyratok-bench", "config": json.dumps(info["config"])},
                 dtype=torch.float16 if half else None)
    meta = {k: v for k, v in info.items() if k not in ("rng",)}
    meta["weights"] = weights.name
    meta["dtype"] = "float16" if half else "float32"
    write_json(stem.with_suffix(".json"), meta)
    return weights, stem.with_suffix(".json")


def weights_path(source: str | Path) -> Path:
    """A checkpoint folder, a bundle stem or a .safetensors file -> its .safetensors file."""
    src = Path(source)
    path = src / "model.safetensors" if src.is_dir() else src.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"init_from: no weights at {path} (give a checkpoint folder or a bundle stem)")
    return path


def source_has(source: str | Path, prefix: str) -> bool:
    """Whether the weights at `source` hold any tensor whose name starts with `prefix` (reads only the header)."""
    from safetensors import safe_open

    with safe_open(str(weights_path(source)), framework="pt") as f:
        return any(k.startswith(prefix) for k in f.keys())


def load_matching(model, source: str | Path) -> list[str]:
    """Start `model` from another run's weights (a checkpoint folder or a bundle's .safetensors / stem): every
    parameter or buffer with the same name and shape is copied; returns the names left at their fresh values (a
    module the source lacks or has in another shape). Safetensors only: loading executes no code."""
    from safetensors.torch import load_file

    weights = load_file(str(weights_path(source)))
    if has_lora_keys(weights):  # a LoRA-trained run: its adapted kernels, merged (LoRA is added after init_from)
        weights = merge_lora_state(weights)
    state = model.state_dict()
    fresh = []
    with torch.no_grad():
        for name, value in state.items():
            if name in weights and weights[name].shape == value.shape:
                value.copy_(weights[name].to(value.dtype))
            else:
                fresh.append(name)
    return fresh


def _prefix_list(prefixes) -> list[str]:
    """`freeze` as given in a configuration (one prefix, a list, or nothing) -> a list."""
    return [prefixes] if isinstance(prefixes, str) else list(prefixes or [])


def _freezes(prefixes, name: str) -> bool:
    return any(name.startswith(p) for p in _prefix_list(prefixes))


def apply_freeze(model, prefixes) -> int:
    """requires_grad=False on parameters whose names start with one of `prefixes` ("quantizer.blocks.last" and
    "quantizer.semantic_in.last" name the last LaPQ level's parts whatever the number of levels); returns how many
    values."""
    if not prefixes:
        return 0
    prefixes = _prefix_list(prefixes)
    for group in ("quantizer.blocks.", "quantizer.semantic_in."):
        symbolic = group + "last"
        if any(x.startswith(symbolic) for x in prefixes):
            last = str(len(model.quantizer.blocks) - 1)
            prefixes = [group + last + x[len(symbolic):] if x.startswith(symbolic) else x for x in prefixes]
    n = 0
    for name, p in model.named_parameters():
        if any(name.startswith(x) for x in prefixes):
            p.requires_grad_(False)
            n += p.numel()
    return n


def attach_lora(model, cfg: PyraTokConfig) -> dict[str, Any]:
    """LoRA on the convolutions under `cfg.lora_targets` (after any start from weights, so the factors begin at
    zero on the loaded kernels; before resuming, so a run's saved factors load back). The factors train even under a
    frozen prefix: freezing the encoder and adding LoRA is the paper's recipe."""
    prefixes = [cfg.lora_targets] if isinstance(cfg.lora_targets, str) else list(cfg.lora_targets)
    names = add_lora(model, cfg.lora_rank, cfg.lora_alpha, prefixes)
    params = lora_parameters(model)
    for p in params:
        p.requires_grad_(True)
    return {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha, "targets": prefixes, "modules": len(names),
            "parameters": sum(p.numel() for p in params)}


def check_decoded_path_frozen(model) -> None:
    """A stage without the reconstruction loss must not move what the decoder reads: the backbone, the last level
    and the null text token frozen, and a last level that ignores the shallower codes (its `prev` projection zero,
    as the structured start leaves it). Otherwise it raises, naming what would change."""
    last = model.quantizer.blocks[-1]
    i = len(model.quantizer.blocks) - 1
    moving = [n for n, p in model.named_parameters() if p.requires_grad and (
        n.startswith(("backbone.", "text_adapter.null", f"quantizer.blocks.{i}.", f"quantizer.semantic_in.{i}.")))]
    if moving:
        raise ValueError(f"w_recon=0 but the decoded path would train ({', '.join(moving[:4])}...): freeze it")
    sem = model.quantizer.semantic_in[i] if model.quantizer.semantic_in is not None else None
    if sem is not None and bool(sem.weight.detach().abs().sum() > 0):
        raise ValueError("w_recon=0 but the last level reads the semantic trunk (its projection is non-zero), so "
                         "training the trunk would change the reconstruction; keep the reconstruction loss")
    if last.prev is not None and bool(last.prev.weight.detach().abs().sum() > 0):
        raise ValueError("w_recon=0 but the last level reads the shallower levels' codes (its prev projection is "
                         "non-zero), so training them would change the reconstruction; start from a checkpoint "
                         "whose last level ignores them (the structured start) or keep the reconstruction loss")


@torch.no_grad()
def _to_bits_inputs(model, calib: torch.Tensor) -> torch.Tensor:
    """(N, dim): what the last LaPQ level's `to_bits` projection reads on the calibration clips."""
    seen = []
    hook = model.quantizer.blocks[-1].to_bits.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        model.quantize(calib, None)
    finally:
        hook.remove()
    return seen[-1].reshape(-1, seen[-1].shape[-1])


def structured_init(model, mixture: ClipMixture, tcfg: TrainConfig) -> float:
    """Start from the area-downsampling baseline (see models/tokenizer/structured_init.py); the bit read-out is fit
    on one calibration batch of 8 clips (17 frames, 64x64) from the training sources."""
    import numpy as np

    from harness.video import to_model_input
    from models.tokenizer.structured_init import init_backbone_as_downsample, init_binary_readout, \
        init_lapq_last_level, init_successive_bits

    init_backbone_as_downsample(model.backbone.vae)
    last = model.quantizer.blocks[-1]
    colour = model.cfg.colour_bits or model.cfg.codebook_bits
    init_lapq_last_level(last, colour)
    rng = np.random.default_rng([tcfg.seed, 99])
    clips = []
    for name, n in mixture.counts(8).items():
        clips += [mixture.sources[name].sample(rng, 17, 64, tcfg.resize) for _ in range(n)]
    calib = to_model_input(torch.stack([c.frames for c in clips]))
    model.eval()
    if model.cfg.residual_stages > 1:  # successive-approximation codes of the colours `to_bits` reads
        init_successive_bits(last.to_bits, _to_bits_inputs(model, calib), model.cfg.residual_stages, rows=colour)
    err = init_binary_readout(model, calib)
    model.train()
    return err


def train(config: str = "tiny", data: str = "ucf101", data_root: str | None = None, out: str | None = None,
          model_args: dict[str, Any] | None = None, resume: bool = True, progress: bool = True,
          cache_root: str | None = None, device: str = "cpu", time_limit_min: float = 0.0,
          export: str | None = None, **_: Any) -> int:
    cfg, tcfg = get_config(config, model_args)
    from models.pyratok.model import PyraTokModel

    out_dir = Path(out or f"runs/pyratok-{config}")
    torch.manual_seed(tcfg.seed)
    model = PyraTokModel(cfg)
    model.load_drift_reference()
    if model.lpips is None:
        from models.tokenizer.recon_loss import LPIPSLoss

        model.lpips = LPIPSLoss()
    info = {"model": "pyratok", "config_name": config, "config": model.cfg.to_dict(), "train": tcfg.to_dict(),
            "data": data, "data_root": data_root, "command": " ".join(sys.argv),
            "lpips": {"used": model.lpips.available, "reason": model.lpips.reason},
            "drift_reference": model.drift_source(), "torch": torch.__version__, "machine": platform.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if out_dir.exists() and (out_dir / "config.json").exists() and resume:
        prev = read_checkpoint_info(out_dir)
        # compared field by field after filling defaults: a run saved before a field existed resumes
        if PyraTokConfig.from_dict(prev.get("config") or {}).to_dict() != info["config"]:
            raise ValueError(f"{out_dir} holds a checkpoint of a different configuration; use another --out or "
                             "--no-resume")
        info["started"] = prev.get("started", info["started"])
    print(f"[train] pyratok {config}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{cfg.levels} levels x {cfg.codebook_bits} bits, align {cfg.align_levels} ({cfg.align_mode}); "
          f"LPIPS {'on' if model.lpips.available else 'off: ' + model.lpips.reason}; drift {model.drift_source()}",
          file=sys.stderr)
    fresh_start = not (resume and (out_dir / "config.json").exists())
    if fresh_start and model.trunk is not None and _freezes(cfg.freeze, "trunk.") and not (
            tcfg.init_from and source_has(tcfg.init_from, "trunk.")):  # refused before any work is done
        raise ValueError("the semantic trunk is frozen but no pretrained trunk was given: pass --model-arg "
                         "init_from=<weights holding trunk.*> (scripts/motion_trunk_study.py --save writes them)")
    mixture = build_data(data, tcfg, data_root, cache_root)
    # the structured start, unless the run starts from weights that hold a backbone (a pretrained semantic trunk
    # alone, for instance, leaves it to the structured start)
    if (fresh_start and cfg.init == "downsample" and not cfg.vae
            and not (tcfg.init_from and source_has(tcfg.init_from, "backbone."))):
        err = structured_init(model, mixture, tcfg)
        info["init"] = {"kind": "downsample", "readout_rms": err}
        print(f"[train] structured init (area-downsample start), bit read-out RMS {err:.4f}", file=sys.stderr)
    if tcfg.init_from and fresh_start:
        left = load_matching(model, tcfg.init_from)
        info["init_from"] = {"source": str(tcfg.init_from), "fresh": left}
        print(f"[train] started from {tcfg.init_from}; {len(left)} tensors fresh", file=sys.stderr)
    frozen = apply_freeze(model, cfg.freeze)
    if frozen:
        info["frozen_parameters"] = frozen
    if cfg.w_recon == 0:
        check_decoded_path_frozen(model)
    if cfg.lora_rank:
        info["lora"] = attach_lora(model, cfg)
        print(f"[train] LoRA r {cfg.lora_rank}, alpha {cfg.lora_alpha} on {info['lora']['modules']} convolutions "
              f"({info['lora']['parameters']} values; their base kernels frozen)", file=sys.stderr)
    summary = run_training(model, info, loop_config(cfg, tcfg, time_limit_min * 60), mixture, out_dir, resume,
                           progress, log=lambda m: print(m, file=sys.stderr), device=device)
    print(f"[train] step {summary['step']} in {summary['elapsed_s']:.0f} s -> {out_dir}", file=sys.stderr)
    if export:
        w, j = export_bundle(out_dir, export)
        print(f"[train] exported {w} and {j}", file=sys.stderr)
    return 0
