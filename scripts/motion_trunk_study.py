"""Can a small video trunk learn the mini splits' semantics on this CPU? A study for issue 7 (docs/pyratok.md).

The bundled PyraTok is at chance on the text-driven zero-shot tasks, and two earlier CPU diagnostics (a semantic
second stage, a level-1 head on the motion labels) stayed at chance. This script separates "the mini splits' motions
cannot be learned on two cores" from "the bundle's design cannot learn them": it trains PyraTok's semantic trunk
(models/pyratok/trunk.py: causal strided 3D conv blocks with per-frame GroupNorm at the Wan encoder's strides, width
32, two more blocks on the 1/8 grid), then a 1x1x1 conv to `--dim` code channels, from scratch on procedural scenes
(tasks/mini/scenes.py: one object, ten motions, random backgrounds, camera drift), 9 frames taken every 4th frame of
a 30-frame 15 fps clip (as the classification protocols sample; past the end the last frame repeats), rendered at
64x112 and cropped to 64x64, with

  --objective labels    cross-entropy on the motion class (an upper bound),
  --objective captions  a soft-target contrastive loss between pooled clip features and the frozen text encoder's
                        caption embeddings through a trained MLP (as PyraTok's `contrastive` alignment),

and reports held-out zero-shot accuracy by text matching (argmax cosine with the embedded class names): the ten
motions in Kinetics' -ing form, the five motions of the k400-cls mini split, and the seven SSv2 mini templates.
`--pooling` pools the code channels over time and space by the mean (what the tasks do) or the max; `--norm none`
drops the trunk's normalization (the control).

    python scripts/motion_trunk_study.py --objective captions --pooling mean --steps 1000 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.mini.clips import MOTION_ING  # noqa: E402
from tasks.mini.scenes import MOTIONS, random_scene, render  # noqa: E402

FRAMES, STRIDE, SCENE_FRAMES, FPS = 9, 4, 30, 15.0


def render_clip(i: int, seed: int, size: int) -> tuple[np.ndarray, int, str]:
    """Clip i: uint8 (FRAMES, size, size, 3) cropped from a size x 1.75 size render (the k400 mini's 128x224 at
    size 128), its motion index (the motions in turn) and its caption."""
    rng = np.random.default_rng([seed, i])
    motion = i % len(MOTIONS)
    width = round(size * 1.75)
    scene = random_scene(rng, SCENE_FRAMES, size, width, FPS, motion=MOTIONS[motion])
    frames, _ = render(scene)
    idx = np.minimum(np.arange(FRAMES) * STRIDE, SCENE_FRAMES - 1)
    x0 = int(rng.integers(0, width - size + 1))
    return frames[idx, :, x0:x0 + size], motion, scene.caption()


def render_set(n: int, seed: int, workers: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """uint8 video (N, 3, FRAMES, size, size) (kept as bytes: 6,000 clips at 128 px are 2.7 GB, 11 GB as floats)."""
    with Pool(workers) as pool:
        items = pool.starmap(render_clip, [(i, seed, size) for i in range(n)], chunksize=32)
    video = torch.from_numpy(np.stack([x for x, _, _ in items])).permute(0, 4, 1, 2, 3).contiguous()
    return video, torch.tensor([y for _, y, _ in items]), [c for _, _, c in items]


def as_input(video: torch.Tensor) -> torch.Tensor:
    return video.float() / 127.5 - 1


class Net(nn.Module):
    """PyraTok's semantic trunk (the Wan strides, width 32) and a 1x1x1 conv from its deepest grid to `dim`."""

    def __init__(self, dim: int, norm: bool):
        super().__init__()
        from models.pyratok.trunk import SemanticTrunk

        self.trunk = SemanticTrunk(32, [False, True, True], depth=2, norm=norm)
        self.out = nn.Conv3d(self.trunk.channels[-1], dim, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(video)[self.trunk.strides[-1]])


def soft_contrastive(video: torch.Tensor, text: torch.Tensor, caption_emb: torch.Tensor, temperature: float = 0.1,
                     target_temperature: float = 0.05) -> torch.Tensor:
    """Symmetric cross-entropy against soft targets from the frozen caption-caption cosines (identical captions
    share the mass), as PyraTok's contrastive alignment."""
    c = F.normalize(caption_emb, dim=-1)
    target = F.softmax(c @ c.T / target_temperature, -1)
    logits = F.normalize(video, dim=-1) @ F.normalize(text, dim=-1).T / temperature
    return -((target * F.log_softmax(logits, -1)).sum(-1).mean() + (target * F.log_softmax(logits.T, -1)).sum(-1).mean())


def zero_shot(features: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor, classes: list[int]) -> float:
    """Accuracy of argmax cosine among `classes` (motion indices), over the clips whose motion is one of them."""
    keep = torch.isin(labels, torch.tensor(classes))
    scores = F.normalize(features[keep], dim=-1) @ F.normalize(class_emb, dim=-1).T
    truth = torch.tensor([classes.index(int(y)) for y in labels[keep]])
    return float((scores.argmax(1) == truth).float().mean())


def write_pyratok_start(path: Path, net: Net, text_mlp: nn.Sequential, offset: int, spread: float,
                        bits: int = 16, levels: int = 4, text_dim: int = 128, target_spread: float = 2.0) -> None:
    """Weights named as PyraTok's (tiny-lang: 16-bit code, 4 levels, text width 128, MLP hidden 256) that start
    every level's code read-out (`quantizer.semantic_in.i`, semantic_into="code") and the text path
    (`text_adapter.mlp`, `text_to_code`) as this study's trained heads: code channels offset..offset+dim hold the
    head's space (scaled so the read-out spreads like the colour code, std `target_spread`), the others read
    nothing, and text lands on the same channels, so cosine(embed_text, pooled code) starts as this study's score."""
    from safetensors.torch import save_file

    dim = net.out.out_channels
    if offset + dim > bits or text_mlp[2].in_features != 256:
        raise ValueError(f"a {dim}-d head at offset {offset} does not fit {bits} code channels / the tiny text MLP")
    scale = target_spread / max(spread, 1e-6)
    state = {f"trunk.{k}": v for k, v in net.trunk.state_dict().items()}
    w = torch.zeros(bits, net.out.in_channels, 1, 1, 1)
    b = torch.zeros(bits)
    w[offset:offset + dim], b[offset:offset + dim] = net.out.weight * scale, net.out.bias * scale
    for i in range(levels):
        state[f"quantizer.semantic_in.{i}.weight"], state[f"quantizer.semantic_in.{i}.bias"] = w, b
    state["text_adapter.mlp.0.weight"], state["text_adapter.mlp.0.bias"] = text_mlp[0].weight, text_mlp[0].bias
    w2, b2 = torch.zeros(text_dim, 256), torch.zeros(text_dim)
    w2[:dim], b2[:dim] = text_mlp[2].weight, text_mlp[2].bias
    state["text_adapter.mlp.2.weight"], state["text_adapter.mlp.2.bias"] = w2, b2
    to_code = torch.zeros(bits, text_dim)
    to_code[torch.arange(offset, offset + dim), torch.arange(dim)] = 1.0
    state["text_to_code.weight"], state["text_to_code.bias"] = to_code, torch.zeros(bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objective", choices=("labels", "captions"), default="captions")
    ap.add_argument("--pooling", choices=("mean", "max"), default="mean")
    ap.add_argument("--norm", choices=("group", "none"), default="group")
    ap.add_argument("--clips", type=int, default=6000, help="rendered clips; the last 10%% are held out")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dim", type=int, default=16, help="code channels of the trunk's output")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="clip side in pixels (64, or 128 as the protocols read)")
    ap.add_argument("--init", type=Path, help="start from a --save file (e.g. trained at another --size)")
    ap.add_argument("--freeze-trunk", action="store_true", help="train only the heads on an --init trunk")
    ap.add_argument("--pyratok-start", type=Path, help="also write a PyraTok start (`init_from` of --config "
                    "tiny-lang): the trunk, its code read-out on every level and the text path, the read-out on the "
                    "code channels from --code-offset on (below them: the structured start's colour channels)")
    ap.add_argument("--code-offset", type=int, default=8)
    ap.add_argument("--save", type=Path, help="write the trained weights (.safetensors; the trunk's keys are "
                    "PyraTok's `trunk.*`, so `--model-arg init_from=` loads them into a configuration with "
                    "semantic_trunk=32)")
    ap.add_argument("--json", type=Path, help="write the settings and the accuracy curve here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from models.pyratok.text import FrozenTextEncoder
    from tasks.kinetics import MINI_LABELS as KINETICS_MINI
    from tasks.ssv2 import MINI_LABELS as SSV2_MINI

    k400_mini = [m for m in KINETICS_MINI[400].values() if m in MOTIONS]  # the scene motions of k400-cls's mini split

    t0 = time.time()
    video, labels, captions = render_set(args.clips, args.seed, args.threads, args.size)
    held = args.clips // 10
    train_x, train_y, train_c = video[:-held], labels[:-held], captions[:-held]
    test_x, test_y = video[-held:], labels[-held:]
    encoder = FrozenTextEncoder()
    caption_emb = encoder.encode(train_c)[2]
    names = {"motions-10": ([MOTION_ING[m] for m in MOTIONS], list(range(len(MOTIONS)))),
             "k400-mini-5": ([MOTION_ING[m] for m in k400_mini], [MOTIONS.index(m) for m in k400_mini]),
             "ssv2-mini-7": ([t.replace("[something]", "something") for t in SSV2_MINI],
                             [MOTIONS.index(m) for m in SSV2_MINI.values()])}
    class_emb = {k: encoder.encode(texts)[2] for k, (texts, _) in names.items()}
    print(f"rendered and embedded {args.clips} clips in {time.time() - t0:.0f} s", flush=True)

    net = Net(args.dim, args.norm == "group")
    text_mlp = nn.Sequential(nn.Linear(caption_emb.shape[1], 256), nn.SiLU(), nn.Linear(256, args.dim))
    head = nn.Linear(args.dim, len(MOTIONS))
    if args.init:
        from safetensors.torch import load_file

        state = load_file(str(args.init))
        for name, module in (("", net), ("text_mlp.", text_mlp)):  # heads of another --dim start fresh
            own = module.state_dict()
            module.load_state_dict({k[len(name):]: v for k, v in state.items() if k.startswith(name)
                                    and not (name == "" and k.startswith("text_mlp."))
                                    and own[k[len(name):]].shape == v.shape}, strict=False)
    if args.freeze_trunk:
        net.trunk.requires_grad_(False)
    params = [p for p in [*net.parameters(), *text_mlp.parameters(), *head.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, args.lr)
    pool = (lambda f: f.mean((2, 3, 4))) if args.pooling == "mean" else (lambda f: f.amax((2, 3, 4)))
    gen = torch.Generator().manual_seed(args.seed)
    curve = []
    t0 = time.time()
    for step in range(1, args.steps + 1):
        i = torch.randint(0, len(train_y), (args.batch_size,), generator=gen)
        feats = pool(net(as_input(train_x[i])))
        if args.objective == "labels":
            loss = F.cross_entropy(head(feats), train_y[i])
        else:
            loss = soft_contrastive(feats, text_mlp(caption_emb[i]), caption_emb[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            with torch.no_grad():
                feats = torch.cat([pool(net(as_input(x))) for x in test_x.split(32)])
                row = {"step": step, "loss": round(float(loss), 4), "seconds": round(time.time() - t0, 1)}
                if args.objective == "labels":  # no text path was trained: the classifier's own accuracy
                    row["supervised-10"] = float((head(feats).argmax(1) == test_y).float().mean())
                else:
                    for k, (_, classes) in names.items():
                        row[k] = zero_shot(feats, test_y, text_mlp(class_emb[k]), classes)
            curve.append(row)
            print("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)
    if args.save:
        from safetensors.torch import save_file

        args.save.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        state.update({f"text_mlp.{k}": v.contiguous() for k, v in text_mlp.state_dict().items()})
        save_file(state, str(args.save), metadata={"script": "scripts/motion_trunk_study.py",
                                                   "settings": json.dumps({k: str(v) for k, v in vars(args).items()})})
    if args.pyratok_start:
        with torch.no_grad():
            read_out = torch.cat([net(as_input(x)) for x in train_x[:256].split(32)])
        write_pyratok_start(args.pyratok_start, net, text_mlp, args.code_offset, float(read_out.std()))
    if args.json:
        chance = {k: 1 / len(c) for k, (_, c) in names.items()} | {"supervised-10": 1 / len(MOTIONS)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()},
                                         "held_out": held, "chance": chance, "curve": curve}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
