"""The one mapping from the class names of the mini splits to what the procedural scenes render.

Later tasks import this to turn a mini split's class name into the text a model is queried with, or to know which
scene motion/shape a label stands for. The real data sets' names go through the same `class_text` rule
("CleanAndJerk" -> "clean and jerk", "Playing water polo" -> "playing water polo").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.mini.scenes import MOTIONS, SHAPES


@dataclass(frozen=True)
class MotionClass:
    """A mini-split action class: the scene motion an object performs during the labelled segment."""

    name: str  # the class name as the data set writes it ("SlidesLeft", "Sliding left")
    motion: str  # a tasks.mini.scenes motion
    speed: tuple[float, float] = (0.8, 1.1)  # range of SceneObject.speed (a fast variant uses a higher range)
    class_id: int | None = None  # the id a detection file uses (THUMOS: like the UCF101 ids, not contiguous)

    @property
    def text(self) -> str:
        return class_text(self.name)


# THUMOS14-style: CamelCase names (like BaseballPitch), ids that are not contiguous (like the UCF101 ids of
# detclasslist.txt), and SpinsFast as a sub-class of Spins: every SpinsFast line is repeated in Spins_*.txt, exactly
# as every CliffDiving line is repeated in Diving_*.txt.
THUMOS_MINI_CLASSES: dict[str, MotionClass] = {c.name: c for c in (
    MotionClass("Bounces", "bounces", class_id=5),
    MotionClass("Circles", "circles", class_id=10),
    MotionClass("SlidesLeft", "slides left", class_id=1),
    MotionClass("SlidesRight", "slides right", class_id=2),
    MotionClass("Spins", "spins", class_id=6),
    MotionClass("SpinsFast", "spins", speed=(2.6, 3.2), class_id=16),
)}
THUMOS_MINI_PARENT = {"SpinsFast": "Spins"}  # sub-class -> class whose file repeats its lines (CliffDiving -> Diving)
THUMOS_MINI_AMBIGUOUS_MOTION = "stays still"  # what happens during an Ambiguous span: an object appears, idle

# ActivityNet-style: sentence-case gerund labels (like "Playing water polo"); one label per video.
ACTIVITYNET_MINI_CLASSES: dict[str, MotionClass] = {c.name: c for c in (
    MotionClass("Bouncing", "bounces"),
    MotionClass("Growing", "grows"),
    MotionClass("Moving up", "moves up"),
    MotionClass("Sliding left", "slides left"),
)}
ACTIVITYNET_MINI_PARENT = "Moving shapes"  # the taxonomy node above the leaf labels

# YouTube-VIS-style categories: the shapes the scenes draw (ids 1.. in alphabetical order, like the real 40).
YTVIS_MINI_CATEGORIES: dict[str, int] = {name: i for i, name in enumerate(sorted(SHAPES), start=1)}

assert all(c.motion in MOTIONS for c in (*THUMOS_MINI_CLASSES.values(), *ACTIVITYNET_MINI_CLASSES.values()))


def class_text(name: str) -> str:
    """A class name as plain lower-case words: "SlidesLeft" -> "slides left", "CleanAndJerk" -> "clean and jerk",
    "Sliding left" -> "sliding left", "earless_seal" -> "earless seal"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).replace("_", " ")
    return " ".join(spaced.lower().split())


def motion_class(name: str) -> MotionClass:
    """The MotionClass of a mini label of any of the data sets (KeyError for a name not in a mini split)."""
    for table in (THUMOS_MINI_CLASSES, ACTIVITYNET_MINI_CLASSES):
        if name in table:
            return table[name]
    raise KeyError(f"{name!r} is not a class of a mini split")
