"""The training loop shared by every tokenizer on the backbone: AdamW with linear warm-up and cosine decay,
gradient clipping, safetensors checkpoints with resume, a progress bar, a JSON-lines log of every loss term, and
DistributedDataParallel through `torchrun` when WORLD_SIZE > 1 (gloo on CPU, nccl on GPUs).

A model plugs in by implementing `training_losses(video, captions, negatives, generator) -> {name: scalar tensor}`
with the weighted objective under "total" (PyraTokModel does); entries starting with "_" are not logged.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from harness.video import to_model_input
from models.tokenizer.checkpoint import load_trainer_state, load_weights, read_checkpoint_info, save_checkpoint
from models.tokenizer.data import ClipMixture, random_captions


@dataclass
class LoopConfig:
    steps: int
    batch_size: int
    lr: float
    min_lr_ratio: float
    warmup: int
    weight_decay: float
    grad_clip: float
    clip_frames: int
    crop: int | list[int]  # a list: one size drawn per step (cheap small crops, some large for context)
    resize: int
    caption_dropout: float
    negatives: int
    log_every: int
    save_every: int
    seed: int
    threads: int = 0
    time_limit_s: float = 0.0


class _LossModule(nn.Module):
    """DDP synchronizes gradients of `forward` calls: route the model's loss method through one."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, video, captions, negatives, generator):
        return self.model.training_losses(video, captions, negatives, generator)


def lr_lambda(cfg: LoopConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / max(cfg.warmup, 1)
        progress = min(1.0, (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only (not on biases, norms, embeddings of special tokens)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "emb" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def run_training(model: nn.Module, info: dict[str, Any], cfg: LoopConfig, data: ClipMixture, out_dir: str | Path,
                 resume: bool = True, progress: bool = True, log: Callable[[str], None] = print,
                 device: str = "cpu", on_save: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Train `model` until cfg.steps (or cfg.time_limit_s); returns a summary. `info` (JSON) is stored in every
    checkpoint's config.json beside the weights, with the step reached and the data state for resuming."""
    out_dir = Path(out_dir)
    rank, world, local = _dist_env()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = torch.device(device)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
    model.to(dev).train()
    torch.manual_seed(cfg.seed + rank)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    neg_rng = np.random.default_rng([cfg.seed, rank, 7])
    step, elapsed = 0, 0.0
    if resume and (out_dir / "config.json").exists():
        ckpt = read_checkpoint_info(out_dir)
        load_weights(model, out_dir / "model.safetensors")
        state = load_trainer_state(out_dir)
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            if state.get("scheduler"):
                sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
        step = int(ckpt.get("step", 0))
        elapsed = float(ckpt.get("elapsed_s", 0.0))
        rng = ckpt.get("rng") or {}
        if rng.get("data"):
            data.set_state(rng["data"])
        if rng.get("negatives"):
            neg_rng.bit_generator.state = rng["negatives"]
        if state is not None and state.get("generator") is not None:
            gen.set_state(state["generator"])
        if rank == 0:
            log(f"[train] resumed from {out_dir} at step {step}")
    runner: nn.Module = _LossModule(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(runner, find_unused_parameters=True)

    def save(final: bool = False) -> None:
        if rank != 0:
            return
        rng_state = {"data": data.get_state(), "negatives": neg_rng.bit_generator.state}
        save_checkpoint(out_dir, model, {**info, "step": step, "elapsed_s": elapsed, "final": final,
                                         "world_size": world}, opt, sched, rng_state, {"generator": gen.get_state()})
        if on_save:
            on_save(out_dir)

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True)
    log_path = out_dir / "log.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time() - elapsed
    last = {}
    while step < cfg.steps:
        if cfg.time_limit_s and time.time() - start >= cfg.time_limit_s:
            if rank == 0:
                log(f"[train] time limit of {cfg.time_limit_s:.0f} s reached at step {step}")
            break
        crops = cfg.crop if isinstance(cfg.crop, (list, tuple)) else [cfg.crop]
        crop = int(crops[int(torch.randint(len(crops), (1,), generator=gen))])
        clips = data.batch(cfg.batch_size, cfg.clip_frames, crop, cfg.resize)
        video = to_model_input(torch.stack([c.frames for c in clips])).to(dev)
        captions = [c.caption if c.caption is not None and float(torch.rand(1, generator=gen)) >= cfg.caption_dropout
                    else None for c in clips]
        negatives = random_captions(neg_rng, cfg.negatives) if cfg.negatives else []
        if hasattr(model, "train_step"):
            model.train_step = step
        terms = runner(video, captions, negatives, gen)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
        opt.step()
        sched.step()
        step += 1
        elapsed = time.time() - start
        if rank == 0:
            recon = terms.get("_recon")
            last = {k: float(v.detach()) for k, v in terms.items() if not k.startswith("_")}
            if recon is not None:
                mse = float(((recon.clamp(-1, 1) - video[:len(recon)]) ** 2).mean()) / 4.0  # on [0, 1]; a model may decode a subset
                last["psnr"] = 10 * math.log10(1.0 / max(mse, 1e-10))
            if step % cfg.log_every == 0 or step == cfg.steps:
                row = {"step": step, "lr": sched.get_last_lr()[0], "elapsed_s": round(elapsed, 1),
                       "grad_norm": None if grad_norm is None else float(grad_norm), **last}
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.3f}", psnr=f"{last.get('psnr', 0):.1f}")
        if step % cfg.save_every == 0 and step < cfg.steps:
            save()
    save(final=step >= cfg.steps)
    if bar is not None:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return {"step": step, "elapsed_s": elapsed, "last": last, "out_dir": str(out_dir)}
