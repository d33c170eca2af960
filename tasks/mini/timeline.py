"""Untrimmed mini videos for temporal localization: one Scene whose objects act one after another.

Each labelled segment is an object that appears, performs its class's motion and disappears; segments are separated
by background-only frames. An "ambiguous" span is an object that appears and stays still (the THUMOS Ambiguous
files). The annotation times are therefore exact: they are the frames during which the object is rendered.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tasks.mini.scenes import COLORS, SHAPES, Scene, SceneObject, _start_x, _start_y, random_scene
from tasks.mini.vocab import THUMOS_MINI_AMBIGUOUS_MOTION, MotionClass

_BACKGROUND_COLORS = {"grassy field": ("green", "yellow"), "cloudy sky": ("blue", "white")}


@dataclass(frozen=True)
class TimedSegment:
    label: str | None  # class name; None for an ambiguous span
    start: int  # first frame in which the object is rendered
    end: int  # frame after the last one
    object_index: int  # 1-based index into Scene.objects (= the instance id in render()'s masks)

    def seconds(self, fps: float) -> tuple[float, float]:
        return self.start / fps, self.end / fps


def timeline_scene(rng: np.random.Generator, plan: Sequence[MotionClass | None], fps: float, height: int,
                   width: int, frames_per_tick: int, segment_ticks: tuple[int, int],
                   gap_ticks: tuple[int, int]) -> tuple[Scene, list[TimedSegment]]:
    """A scene acting out `plan` in order (None = an ambiguous span). Segment and gap lengths are whole numbers of
    ticks drawn from the given inclusive ranges, so their times in seconds are round when a tick is (e.g. 0.2 s at
    both 25 and 30 fps)."""
    base = random_scene(rng, num_frames=1, height=height, width=width, fps=fps, objects=0)
    taken = set(_BACKGROUND_COLORS.get(base.background.kind, base.background.colors))
    t = int(rng.integers(gap_ticks[0], gap_ticks[1] + 1)) * frames_per_tick
    objects, segments = [], []
    for item in plan:
        length = int(rng.integers(segment_ticks[0], segment_ticks[1] + 1)) * frames_per_tick
        motion = THUMOS_MINI_AMBIGUOUS_MOTION if item is None else item.motion
        speed = 1.0 if item is None else float(rng.uniform(*item.speed))
        color = str(rng.choice([c for c in COLORS if c not in taken]))
        objects.append(SceneObject(
            shape=str(rng.choice(SHAPES)), color=color, motion=motion, size=float(rng.uniform(0.14, 0.2)),
            x=float(_start_x(motion, rng)), y=float(_start_y(motion, rng)), speed=speed, start=t, end=t + length))
        segments.append(TimedSegment(None if item is None else item.name, t, t + length, len(objects)))
        t += length + int(rng.integers(gap_ticks[0], gap_ticks[1] + 1)) * frames_per_tick
    return dataclasses.replace(base, objects=tuple(objects), num_frames=t), segments


def object_sentence(scene: Scene, index: int, verb: str | None = None, article: str = "a") -> str:
    """ "A red square slides left over a striped floor." for object `index` (1-based) of `scene`."""
    o = scene.objects[index - 1]
    if article.endswith("a") and o.color[0] in "aeiou":
        article += "n"
    text = f"{article} {o.color} {o.shape} {verb or o.motion} over a {scene.background.kind}."
    return text[0].upper() + text[1:]
