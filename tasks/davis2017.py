"""DAVIS 2017 (and the DAVIS-2016 subsets inside it): reader, mask PNG I/O, and the mini split.

Layout (DAVIS-2017-trainval-480p.zip unpacks to DAVIS/; --data-root may name DAVIS/ or the folder holding it):
    DAVIS/JPEGImages/480p/<seq>/00000.jpg ...                 5-digit, 0-based, contiguous stems
    DAVIS/Annotations/480p/<seq>/00000.png ...                semi-supervised GT: every frame (test-dev: frame 0 only)
    DAVIS/Annotations_unsupervised/480p/<seq>/00000.png ...   unsupervised GT (separate download; optional)
    DAVIS/ImageSets/2017/{train,val}.txt                      one sequence name per line
    DAVIS/ImageSets/2016/{train,val}.txt                      the DAVIS-2016 subsets, same format
Masks are indexed PNGs (mode P, the 256-entry PASCAL VOC palette); the pixel value is the object id, 0 background,
255 void. They must be read as indices (`np.array(Image.open(p))`), never converted to RGB. The number of objects of
a sequence is the largest id in its frame-0 mask (void excluded), as in davis2017-evaluation. Height is 480 in the
480p package; the width varies (854 mostly, 910 for bike-packing).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
import numpy as np

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.io import atomic_path
from harness.metrics.davis_files import read_image_set as parse_image_set
from harness.metrics.davis_files import read_label_png
from harness.task import Sample, SampleList
from harness.video import read_image_sequence

VOID = 255
ANNOTATION_DIRS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}
STEM = re.compile(r"^\d{5}$")


class Davis2017(Dataset):
    name = "davis2017"
    mini_version = 1
    homepage = ("https://davischallenge.org/davis2017/code.html (DAVIS-2017-trainval-480p.zip; "
                "DAVIS-2017-Unsupervised-trainval-480p.zip for Annotations_unsupervised)")
    layout = ("<root>/DAVIS/{JPEGImages,Annotations}/480p/<seq>/00000.{jpg,png} and "
              "<root>/DAVIS/ImageSets/2017/{train,val}.txt")

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_davis_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every sequence named by every ImageSets/<year>/*.txt, once, with the annotation folders it has."""
        davis = resolve_davis_root(root)
        set_files = sorted((davis / "ImageSets").glob("*/*.txt"))
        if not set_files:
            raise MissingDataError(self.missing_message(root, "ImageSets/2017/*.txt"))
        seen: dict[str, Sample] = {}
        rejected: list[dict[str, str]] = []
        for set_file in set_files:
            listing = _list_set_file(davis, set_file, "480p", "semi-supervised")
            rejected += listing.rejected
            for s in listing.samples:
                seen.setdefault(s.id, s)
        samples = []
        for s in sorted(seen.values(), key=lambda s: s.id):
            kinds = [k for k, d in ANNOTATION_DIRS.items() if (davis / d / "480p" / s.id).is_dir()]
            samples.append(replace(s, meta={**s.meta, "annotation_kinds": kinds}))
        return SampleList(samples, rejected)

    def check_load(self, sample: Sample) -> None:
        """All frames and every kind of mask decode, and agree in size, count and stems."""
        for kind in sample.meta.get("annotation_kinds", ["semi-supervised"]):
            load_davis_sequence(sample.meta["davis_root"], sample.id, sample.meta["resolution"], kind)


# ---------------------------------------------------------------------------------------------------------------
# Palette and mask PNGs
# ---------------------------------------------------------------------------------------------------------------
def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: uint8 (n, 3); colour i interleaves the bits of i over R, G, B from the top bit."""
    ids = np.arange(n)
    pal = np.zeros((n, 3), np.int64)
    for j in range(8):
        for ch in range(3):
            pal[:, ch] |= ((ids >> (3 * j + ch)) & 1) << (7 - j)
    return pal.astype(np.uint8)


VOC_PALETTE = voc_palette()


def read_mask_png(path: str | Path, allow_grayscale: bool = False) -> np.ndarray:
    """The label indices of an indexed PNG as uint8 (H, W), decoded by the scorer's reader
    (harness.metrics.davis_files). Grayscale (mode L) is accepted only when asked (result files may be grayscale ids);
    an RGB mask is refused: its colours are not ids."""
    return read_label_png(path, {"P", "L"} if allow_grayscale else {"P"})


def write_davis_mask(path: str | Path, ids: np.ndarray) -> None:
    """Write object ids (uint8 (H, W); 0 background, 255 void) as a DAVIS indexed PNG with the VOC palette,
    atomically (results for the evaluation, or GT of a mini split)."""
    from PIL import Image

    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise ValueError(f"expected uint8 (H, W) object ids, got {ids.shape} {ids.dtype}")
    im = Image.fromarray(ids)  # mode L
    im.putpalette(VOC_PALETTE.tobytes())  # L -> P, indices unchanged
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def num_objects(first_mask: np.ndarray) -> int:
    """Objects of a sequence: the largest id of its frame-0 mask, void excluded (davis2017-evaluation)."""
    m = np.asarray(first_mask)
    m = np.where(m == VOID, 0, m)
    return int(m.max(initial=0))


def split_void(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids with void set to 0, void) — the evaluation zeroes void pixels in the GT and keeps them as a mask."""
    void = masks == VOID
    return np.where(void, 0, masks).astype(np.uint8), void


# ---------------------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------------------
def resolve_davis_root(root: str | Path) -> Path:
    """The DAVIS/ folder: `root` itself when it holds JPEGImages/ or ImageSets/, else root/DAVIS."""
    root = Path(root)
    for cand in (root, root / "DAVIS"):
        if (cand / "JPEGImages").is_dir() or (cand / "ImageSets").is_dir():
            return cand
    raise MissingDataError(Davis2017().missing_message(root, "a DAVIS folder (JPEGImages/, ImageSets/)"))


def read_image_set(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """An ImageSets/<year>/<set>.txt -> (sequence names in file order, rejected lines as file:line), parsed by the
    scorer's parser (harness.metrics.davis_files)."""
    names, bad = parse_image_set(path)
    rejected = [{"sample_id": "", "path": f"{path}:{n}", "error": f"{path}:{n}: expected one sequence name per line, "
                                                                 f"got {line!r}"} for n, line in bad]
    return names, rejected


def frame_stems(folder: Path, suffix: str) -> list[str]:
    return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() == suffix and not p.name.startswith("."))


def list_davis(root: str | Path, split: str = "val", year: str | int = 2017, resolution: str = "480p",
               kind: str = "semi-supervised") -> SampleList:
    """Sequences of ImageSets/<year>/<split>.txt whose frame and mask folders exist (others are rejected)."""
    davis = resolve_davis_root(root)
    set_file = davis / "ImageSets" / str(year) / f"{split}.txt"
    if not set_file.exists():
        raise MissingDataError(Davis2017().missing_message(Path(root), f"the sequence list {set_file}"))
    return _list_set_file(davis, set_file, resolution, kind)


def _list_set_file(davis: Path, set_file: Path, resolution: str, kind: str) -> SampleList:
    names, rejected = read_image_set(set_file)
    lines = _line_numbers(set_file)
    samples = []
    for name in names:
        image_dir = davis / "JPEGImages" / resolution / name
        mask_dir = davis / ANNOTATION_DIRS[kind] / resolution / name
        where = f"{set_file}:{lines.get(name, '?')}"
        missing = [d for d in (image_dir, mask_dir) if not d.is_dir()]
        if missing:
            rejected.append({"sample_id": name, "path": str(missing[0]),
                             "error": f"{missing[0]}: folder is missing (sequence {name} listed at {where})"})
            continue
        samples.append(Sample(name, str(image_dir), stratum=None, cluster=name, meta={
            "sequence": name, "set": f"{set_file.parent.name}/{set_file.stem}", "resolution": resolution,
            "kind": kind, "davis_root": str(davis), "image_dir": str(image_dir), "mask_dir": str(mask_dir)}))
    return SampleList(samples, rejected)


def _line_numbers(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), start=1):
        out.setdefault(line.strip(), i)
    return out


@dataclass
class DavisSequence:
    """One decoded sequence: frames uint8 (T, H, W, 3) and raw masks uint8 (M, H, W) (255 = void kept), where M is T,
    or 1 for test-dev packages that give only the frame-0 mask."""

    name: str
    stems: list[str]
    frames: np.ndarray
    masks: np.ndarray
    num_objects: int
    mask_paths: list[str] = field(default_factory=list)

    @property
    def ids(self) -> np.ndarray:
        return split_void(self.masks)[0]

    @property
    def void(self) -> np.ndarray:
        return self.masks == VOID


def read_davis_frames(root: str | Path, seq: str, resolution: str = "480p") -> tuple[list[str], np.ndarray]:
    """(stems, frames uint8 (T, H, W, 3)) of a sequence; stems must be 00000, 00001, ... without gaps."""
    folder = resolve_davis_root(root) / "JPEGImages" / resolution / seq
    if not folder.is_dir():
        raise DataError(str(folder), "frame folder is missing")
    stems = frame_stems(folder, ".jpg")
    _check_stems(folder, stems)
    return stems, read_image_sequence([folder / f"{s}.jpg" for s in stems])


def read_davis_masks(root: str | Path, seq: str, resolution: str = "480p", kind: str = "semi-supervised",
                     allow_grayscale: bool = False) -> np.ndarray:
    """Object ids uint8 (T, H, W) of a sequence's mask PNGs (255 = void kept), read as palette indices."""
    folder = resolve_davis_root(root) / ANNOTATION_DIRS[kind] / resolution / seq
    if not folder.is_dir():
        raise DataError(str(folder), "mask folder is missing")
    stems = frame_stems(folder, ".png")
    _check_stems(folder, stems)
    return _stack_masks([folder / f"{s}.png" for s in stems], allow_grayscale)


def _stack_masks(paths: list[Path], allow_grayscale: bool) -> np.ndarray:
    masks = [read_mask_png(p, allow_grayscale) for p in paths]
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise DataError(str(paths[0].parent), f"masks differ in size: {sorted(shapes)}")
    return np.stack(masks)


def _check_stems(folder: Path, stems: list[str]) -> None:
    if not stems:
        raise DataError(str(folder), "holds no frames")
    bad = [s for s in stems if not STEM.match(s)]
    if bad:
        raise DataError(str(folder / bad[0]), "file name is not a 5-digit frame number (00000, 00001, ...)")
    expected = [f"{i:05d}" for i in range(len(stems))]
    if stems != expected:
        gap = next(e for s, e in zip(stems, expected) if s != e)
        raise DataError(str(folder), f"frame numbers are not contiguous from 00000: {gap} is missing")


def load_davis_sequence(root: str | Path, seq: str, resolution: str = "480p",
                        kind: str = "semi-supervised") -> DavisSequence:
    """Frames and masks of a sequence, checked: every mask has a frame of the same stem and size, and either every
    frame has a mask or only frame 0 does (test-dev)."""
    davis = resolve_davis_root(root)
    stems, frames = read_davis_frames(davis, seq, resolution)
    mask_dir = davis / ANNOTATION_DIRS[kind] / resolution / seq
    masks = read_davis_masks(davis, seq, resolution, kind)
    if len(masks) not in (len(stems), 1):
        raise DataError(str(mask_dir), f"has {len(masks)} masks for {len(stems)} frames (expected every frame, "
                                       "or frame 0 only)")
    if masks.shape[1:] != frames.shape[1:3]:
        raise DataError(str(mask_dir), f"masks are {masks.shape[2]}x{masks.shape[1]} but the frames are "
                                       f"{frames.shape[2]}x{frames.shape[1]}")
    paths = [str(mask_dir / f"{s}.png") for s in stems[:len(masks)]]
    return DavisSequence(seq, stems, frames, masks, num_objects(masks[0]), paths)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
MINI_HEIGHT = 240  # half of 480p, to stay fast; the folder keeps the real name "480p"
MINI_WIDTH = 427  # 854 / 2
MINI_WIDE = 455  # 910 / 2, like bike-packing
# (set, objects, frames, width, an object leaves early)
MINI_SEQUENCES = (
    ("train", 1, 12, MINI_WIDTH, False), ("train", 2, 14, MINI_WIDTH, False), ("train", 3, 12, MINI_WIDTH, True),
    ("val", 1, 12, MINI_WIDTH, False), ("val", 2, 16, MINI_WIDE, False), ("val", 3, 14, MINI_WIDTH, True),
    ("val", 2, 12, MINI_WIDTH, False),
)
MINI_JPEG_QUALITY = 90


def write_davis_mini(out: Path, seed: int = 0) -> None:
    """7 sequences (3 train, 4 val) of 12-16 frames at 240 px height, one 455 px wide, 1-3 objects each, in the
    DAVIS 2017 layout, with DAVIS-2016 subsets and unsupervised annotations. Masks are exactly the rendered objects;
    from frame 1 on, a 1-px void (255) band surrounds them (frame 0 has none, so its max id is the object count)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    davis = out / "DAVIS"
    sets: dict[str, list[str]] = {"train": [], "val": []}
    for split, n_obj, n_frames, width, leaves in MINI_SEQUENCES:
        scene, frames, ids = _mini_sequence(rng, n_obj, n_frames, width, leaves)
        name = _sequence_name(scene, sets)
        sets[split].append(name)
        masks = _with_void_band(ids)
        img_dir = davis / "JPEGImages" / "480p" / name
        img_dir.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(img_dir / f"{t:05d}.jpg", quality=MINI_JPEG_QUALITY)
            for ann in ANNOTATION_DIRS.values():
                write_davis_mask(davis / ann / "480p" / name / f"{t:05d}.png", masks[t])
    for year, pick in (("2017", lambda names: names), ("2016", lambda names: names[:2])):
        for split, names in sets.items():
            path = davis / "ImageSets" / year / f"{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes("".join(f"{n}\n" for n in sorted(pick(names))).encode("ascii"))


def _mini_sequence(rng: np.random.Generator, n_obj: int, n_frames: int, width: int, leaves: bool):
    from tasks.mini.scenes import random_scene, render

    for _ in range(100):  # redraw until every object is visible in frame 0, so ids 1..K are all there
        scene = random_scene(rng, num_frames=n_frames, height=MINI_HEIGHT, width=width, fps=24.0, objects=n_obj)
        if leaves:
            last = scene.objects[-1]
            scene = replace(scene, objects=(*scene.objects[:-1], replace(last, end=n_frames - 4)))
        frames, ids = render(scene)
        if set(np.unique(ids[0]).tolist()) == set(range(n_obj + 1)):
            return scene, frames, ids
    raise RuntimeError("could not draw a mini DAVIS sequence with every object visible in frame 0")


def _sequence_name(scene, taken: dict[str, list[str]]) -> str:
    o = scene.objects[0]
    base = f"{o.color}-{o.shape}" + (f"-and-{len(scene.objects) - 1}" if len(scene.objects) > 1 else "")
    used = {n for names in taken.values() for n in names}
    name, k = base, 2
    while name in used:
        name, k = f"{base}-{k}", k + 1
    return name


def _with_void_band(ids: np.ndarray) -> np.ndarray:
    """255 on the background pixels touching an object (8-neighbourhood), from frame 1 on."""
    from scipy.ndimage import binary_dilation

    out = ids.copy()
    fg = ids[1:] > 0
    band = binary_dilation(fg, structure=np.ones((1, 3, 3), bool)) & ~fg
    out[1:][band] = VOID
    return out
