"""A quick zero-shot probe of text alignment: does cosine(embed_text(phrase), features(video, level)) pick the right
phrase on held-out procedural scenes?

    python -m models.pyratok.probe [--checkpoint STEM] [--scenes 48] [--json out.json]

Held-out scenes: layouts from their own generator stream and render seeds >= 2^31 + 10^9, so they are disjoint from
the training scenes (render seeds 2^31 + n, n < 10^9) and from every mini split (seeds < 2^31). Clips are 17 frames,
short side 128, centre crop 128, like ucf101-recon.

Scores (for every level): a clip's score for a phrase is the cosine between the phrase's embedding and the clip's
features, pooled over cells either as the cosine with the mean feature ("mean") or as the largest cell cosine
("max"). Reported accuracies:
  object_pair   the true "a <colour> <shape>" against one with another colour AND another shape (chance 0.5),
                e.g. "red square" vs "blue circle"
  object_32way  the true phrase among all 8 colours x 4 shapes (chance 1/32)
  colour_8way, shape_4way   "a <colour> object" / "a <shape>" among its kind
  motion_pair   clips that slide left or bounce: "slides left" against "bounces" (chance 0.5)
  motion_10way  "something <motion>" among the 10 motions (chance 0.1)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from harness.video import center_crop, resize_short_side, to_model_input

PROBE_STREAM = 0x5052_4F42_45  # "PROBE"
PROBE_SEED_BASE = 2 ** 31 + 10 ** 9


def probe_scenes(n: int, seed: int = 0, motions: tuple[str, ...] | None = None):
    from tasks.mini.scenes import MOTIONS, random_scene, render

    rng = np.random.default_rng([PROBE_STREAM, seed])
    out = []
    for i in range(n):
        motion = str(rng.choice(motions)) if motions else None
        scene = random_scene(rng, num_frames=17, height=240, width=320, motions=MOTIONS, motion=motion)
        scene = dataclasses.replace(scene, seed=PROBE_SEED_BASE + seed * 100_000 + i)
        frames, _ = render(scene)
        clip = center_crop(resize_short_side(frames, 128), 128)
        out.append((clip, scene.objects[0]))
    return out


def _scores(feats: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
    """feats (B, t, h, w, k), text (N, k) -> {"mean": (B, N), "max": (B, N)} cosine scores."""
    f = feats.flatten(1, 3)
    mean = F.normalize(f.mean(1), dim=-1) @ F.normalize(text, dim=-1).t()
    cells = torch.einsum("bnk,ck->bcn", F.normalize(f, dim=-1), F.normalize(text, dim=-1))
    return {"mean": mean, "max": cells.max(-1).values}


@torch.no_grad()
def run_probe(adapter, scenes: int = 48, seed: int = 0, batch: int = 4) -> dict:
    from tasks.mini.scenes import COLORS, MOTIONS, SHAPES

    colors, shapes = list(COLORS), list(SHAPES)
    objects = [f"a {c} {s}" for c in colors for s in shapes]
    color_q = [f"a {c} object" for c in colors]
    shape_q = [f"a {s}" for s in shapes]
    motion_q = [f"something {m}" for m in MOTIONS]
    pair_q = ["slides left", "bounces"]
    emb = {k: adapter.embed_text(v) for k, v in
           {"objects": objects, "colors": color_q, "shapes": shape_q, "motions": motion_q, "pair": pair_q}.items()}
    data = probe_scenes(scenes, seed)
    motion_data = probe_scenes(max(scenes // 2, 8), seed + 1, motions=("slides left", "bounces"))
    levels = adapter.model.cfg.levels
    rng = np.random.default_rng(seed)
    result: dict = {"scenes": scenes, "motion_scenes": len(motion_data), "levels": {}}
    acc: dict[int, dict[str, dict[str, list[float]]]] = {lv: {} for lv in range(levels)}

    def add(lv, name, pool, ok):
        acc[lv].setdefault(pool, {}).setdefault(name, []).extend(ok)

    def all_levels(part):
        """Features of every level from ONE encode (features() would re-encode the pyramid per level)."""
        video = to_model_input(torch.stack([c for c, _ in part]))
        return [adapter.features(video, lv).float() for lv in range(levels)] if levels == 1 else \
            _level_features(adapter, video)

    for i in range(0, len(data), batch):
        part = data[i:i + batch]
        for lv, feats in enumerate(all_levels(part)):
            for pool, s in _scores(feats, emb["objects"]).items():
                for b, (_, o) in enumerate(part):
                    true = objects.index(f"a {o.color} {o.shape}")
                    other_c = [c for c in colors if c != o.color][int(rng.integers(7))]
                    other_s = [x for x in shapes if x != o.shape][int(rng.integers(3))]
                    other = objects.index(f"a {other_c} {other_s}")
                    add(lv, "object_pair", pool, [float(s[b, true] > s[b, other])])
                    add(lv, "object_32way", pool, [float(int(s[b].argmax()) == true)])
            for pool, s in _scores(feats, emb["colors"]).items():
                add(lv, "colour_8way", pool, [float(int(s[b].argmax()) == colors.index(o.color))
                                              for b, (_, o) in enumerate(part)])
            for pool, s in _scores(feats, emb["shapes"]).items():
                add(lv, "shape_4way", pool, [float(int(s[b].argmax()) == shapes.index(o.shape))
                                             for b, (_, o) in enumerate(part)])
            for pool, s in _scores(feats, emb["motions"]).items():
                add(lv, "motion_10way", pool, [float(int(s[b].argmax()) == list(MOTIONS).index(o.motion))
                                               for b, (_, o) in enumerate(part)])
    for i in range(0, len(motion_data), batch):
        part = motion_data[i:i + batch]
        for lv, feats in enumerate(all_levels(part)):
            for pool, s in _scores(feats, emb["pair"]).items():
                add(lv, "motion_pair", pool, [float(int(s[b].argmax()) == pair_q.index(o.motion))
                                              for b, (_, o) in enumerate(part)])
    for lv in range(levels):
        result["levels"][f"l{lv + 1}"] = {pool: {k: round(float(np.mean(v)), 4) for k, v in d.items()}
                                          for pool, d in acc[lv].items()}
    result["chance"] = {"object_pair": 0.5, "object_32way": 1 / 32, "colour_8way": 1 / 8, "shape_4way": 0.25,
                        "motion_pair": 0.5, "motion_10way": 0.1}
    return result


def _level_features(adapter, video: torch.Tensor) -> list[torch.Tensor]:
    """(B, t, h, w, k) pre-sign values of every level, cropped like `features`."""
    _, zs, _ = adapter._quantize(video)
    out = []
    for i, z in enumerate(zs):
        st, sh, sw = adapter.feature_stride(i)
        t, h, w = video.shape[2:]
        keep = (1 + (t - 1 + st - 1) // st if st > 1 else t, -(-h // sh), -(-w // sw))
        out.append(z[:, :, :keep[0], :keep[1], :keep[2]].permute(0, 2, 3, 4, 1).float())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="bundle stem or training folder (default: the bundled checkpoint)")
    p.add_argument("--scenes", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    from models.pyratok.adapter import PyraTokAdapter

    adapter = PyraTokAdapter(checkpoint=args.checkpoint)
    res = run_probe(adapter, args.scenes, args.seed)
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        from harness.io import write_json

        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
