"""Procedural scenes for mini splits: one scene description gives frames, exact instance masks, captions and labels.

Every modality comes from the same description ("a red square slides left over a striped floor"), so zero-shot tasks
on the mini splits have real, consistent signal: captions name what moves, class labels are motions, action segments
are the frames during which a motion happens, and masks are the rendered pixels of each object, exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 90, 220), "yellow": (240, 200, 30),
    "purple": (148, 80, 189), "orange": (255, 127, 14), "white": (235, 235, 235), "black": (25, 25, 25),
}
SHAPES = ("square", "circle", "triangle", "diamond")
BACKGROUNDS = ("striped floor", "checkered floor", "dotted wall", "grassy field", "brick wall", "cloudy sky")
MOTIONS = ("slides left", "slides right", "moves up", "moves down", "bounces", "spins", "grows", "shrinks",
           "zigzags", "circles")


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    motion: str
    size: float = 0.18  # half-extent as a fraction of the frame's short side
    x: float = 0.5  # start centre, fractions of width / height
    y: float = 0.5
    speed: float = 1.0  # motion amplitude multiplier
    start: int = 0  # first frame in which the object is visible and moving
    end: int | None = None  # frame after the last one (None: to the end)

    def phrase(self) -> str:
        return f"a {self.color} {self.shape} {self.motion}"


@dataclass(frozen=True)
class Background:
    kind: str
    colors: tuple[str, str] = ("white", "black")
    scale: float = 16.0  # pattern period in pixels at 240p
    angle: float = 0.0  # degrees, for stripes
    drift: tuple[float, float] = (0.0, 0.0)  # pixels per frame (camera pan), at 240p


@dataclass(frozen=True)
class Scene:
    background: Background
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)
    num_frames: int = 32
    height: int = 240
    width: int = 320
    fps: float = 25.0
    seed: int = 0

    def caption(self) -> str:
        parts = [o.phrase() for o in self.objects]
        who = " and ".join(parts) if parts else "nothing moves"
        return f"{who} over a {self.background.kind}"


# ---------------------------------------------------------------------------------------------------------------
def _mix(a: str, b: str, w: np.ndarray) -> np.ndarray:
    ca, cb = np.asarray(COLORS[a], np.float32), np.asarray(COLORS[b], np.float32)
    return ca * (1 - w[..., None]) + cb * w[..., None]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Value noise in [0, 1]: random values on a coarse grid, bilinearly interpolated."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    ys, xs = np.arange(h) / cell, np.arange(w) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = grid
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    bot = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def render_background(bg: Background, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 (h, w, 3) texture."""
    s = bg.scale * h / 240.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if bg.kind == "striped floor":
        a = math.radians(bg.angle)
        u = xx * math.cos(a) + yy * math.sin(a)
        w_ = 0.5 + 0.5 * np.sin(2 * math.pi * u / s)
        img = _mix(*bg.colors, w_)
    elif bg.kind == "checkered floor":
        w_ = ((np.floor(xx / s) + np.floor(yy / s)) % 2).astype(np.float32)
        img = _mix(*bg.colors, w_)
    elif bg.kind == "dotted wall":
        d = np.hypot((xx % s) - s / 2, (yy % s) - s / 2)
        img = _mix(*bg.colors, (d < s * 0.22).astype(np.float32))
    elif bg.kind == "grassy field":
        n = 0.6 * _smooth_noise(rng, h, w, s) + 0.4 * _smooth_noise(rng, h, w, s / 4)
        img = _mix("green", "yellow", 0.15 + 0.5 * n) * (0.7 + 0.3 * n[..., None])
    elif bg.kind == "brick wall":
        row = np.floor(yy / s)
        off = (row % 2) * s
        mortar = ((yy % s) < s * 0.12) | (((xx + off) % (2 * s)) < s * 0.12)
        img = _mix(*bg.colors, mortar.astype(np.float32))
    elif bg.kind == "cloudy sky":
        n = 0.7 * _smooth_noise(rng, h, w, s * 3) + 0.3 * _smooth_noise(rng, h, w, s)
        img = _mix("blue", "white", np.clip(n * 1.3 - 0.2, 0, 1))
    else:
        raise ValueError(f"unknown background {bg.kind!r}")
    grain = rng.normal(0.0, 6.0, (h, w, 1)).astype(np.float32)  # static texture, so codecs have detail to keep
    return np.clip(img + grain, 0, 255)


def object_pose(o: SceneObject, t: int, n: int, h: int, w: int) -> tuple[float, float, float, float]:
    """(cx, cy, half-size, rotation) of an object at frame t, in pixels and radians."""
    end = n if o.end is None else o.end
    span = max(end - o.start - 1, 1)
    p = min(max((t - o.start) / span, 0.0), 1.0)  # progress through its active interval
    short = min(h, w)
    r = o.size * short
    cx, cy, rot = o.x * w, o.y * h, 0.0
    travel = 0.45 * o.speed
    m = o.motion
    if m == "slides left":
        cx -= travel * w * p
    elif m == "slides right":
        cx += travel * w * p
    elif m == "moves up":
        cy -= travel * h * p
    elif m == "moves down":
        cy += travel * h * p
    elif m == "bounces":
        cy -= abs(math.sin(2 * math.pi * p * 1.5)) * 0.3 * h * o.speed
    elif m == "spins":
        rot = 2 * math.pi * p * o.speed
    elif m == "grows":
        r *= 0.5 + 1.0 * p
    elif m == "shrinks":
        r *= 1.5 - 1.0 * p
    elif m == "zigzags":
        cx += (p - 0.5) * travel * w
        cy += (abs(((p * 4) % 2) - 1) - 0.5) * 0.3 * h
    elif m == "circles":
        ang = 2 * math.pi * p * o.speed
        cx += 0.22 * w * math.cos(ang) - 0.22 * w
        cy += 0.22 * h * math.sin(ang)
    elif m != "stays still":
        raise ValueError(f"unknown motion {m!r}")
    return cx, cy, max(r, 2.0), rot


def shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    """Boolean mask of a shape centred at (cx, cy) with half-extent r, rotated by rot (pixel centres at +0.5)."""
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = math.cos(rot), math.sin(rot)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if shape == "circle":
        return u * u + v * v <= r * r
    if shape == "square":
        return (np.abs(u) <= r) & (np.abs(v) <= r)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= r
    if shape == "triangle":  # apex up, base at v = +r/2... an equilateral-ish triangle inside the circle of radius r
        return (v <= 0.5 * r) & (v >= -r + 1.732 * np.abs(u))
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 (T, H, W, 3) and visible instance ids uint8 (T, H, W): 0 background, k = objects[k-1]."""
    h, w, n = scene.height, scene.width, scene.num_frames
    rng = np.random.default_rng(scene.seed)
    dx, dy = scene.background.drift
    k = h / 240.0
    margin_x, margin_y = int(abs(dx) * k * n) + 1, int(abs(dy) * k * n) + 1
    big = render_background(scene.background, h + margin_y, w + margin_x, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = (0.75 + 0.25 * (1 - yy / h))[..., None]  # a vertical light gradient on objects
    frames = np.empty((n, h, w, 3), np.uint8)
    ids = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        ox = min(int(round(t * abs(dx) * k)), margin_x - 1)
        oy = min(int(round(t * abs(dy) * k)), margin_y - 1)
        ox = margin_x - 1 - ox if dx < 0 else ox
        oy = margin_y - 1 - oy if dy < 0 else oy
        img = big[oy:oy + h, ox:ox + w].copy()
        for i, o in enumerate(scene.objects, start=1):
            end = n if o.end is None else o.end
            if not (o.start <= t < end):
                continue
            m = shape_mask(o.shape, xx, yy, *object_pose(o, t, n, h, w))
            col = np.asarray(COLORS[o.color], np.float32) * shade
            img[m] = col[m]
            ids[t][m] = i
        frames[t] = np.clip(img, 0, 255).round().astype(np.uint8)
    return frames, ids


def random_scene(rng: np.random.Generator, num_frames: int = 32, height: int = 240, width: int = 320,
                 fps: float = 25.0, objects: int = 1, motions: tuple[str, ...] = MOTIONS,
                 motion: str | None = None, background: str | None = None) -> Scene:
    """A scene with random (but seeded) background and objects; `motion` fixes the first object's motion."""
    bg_kind = background or str(rng.choice(BACKGROUNDS))
    names = list(COLORS)
    c1, c2 = rng.choice(len(names), 2, replace=False)
    bg = Background(bg_kind, (names[c1], names[c2]), scale=float(rng.uniform(10, 24)),
                    angle=float(rng.uniform(0, 180)), drift=(float(rng.uniform(-1, 1)), float(rng.uniform(-0.5, 0.5))))
    objs = []
    used_colors = {names[c1], names[c2]}
    for j in range(objects):
        color = str(rng.choice([c for c in names if c not in used_colors]))
        used_colors.add(color)
        m = motion if (j == 0 and motion) else str(rng.choice(motions))
        objs.append(SceneObject(
            shape=str(rng.choice(SHAPES)), color=color, motion=m, size=float(rng.uniform(0.12, 0.2)),
            x=float(_start_x(m, rng)), y=float(_start_y(m, rng)), speed=float(rng.uniform(0.8, 1.1))))
    return Scene(bg, tuple(objs), num_frames, height, width, fps, int(rng.integers(0, 2**31 - 1)))


def _start_x(motion: str, rng: np.random.Generator) -> float:
    if motion == "slides left":
        return rng.uniform(0.7, 0.8)
    if motion == "slides right":
        return rng.uniform(0.2, 0.3)
    if motion == "circles":
        return rng.uniform(0.6, 0.7)
    return rng.uniform(0.3, 0.7)


def _start_y(motion: str, rng: np.random.Generator) -> float:
    if motion == "moves up":
        return rng.uniform(0.7, 0.8)
    if motion == "moves down":
        return rng.uniform(0.2, 0.3)
    if motion == "bounces":
        return rng.uniform(0.65, 0.75)
    return rng.uniform(0.35, 0.65)
