"""YouTube-VIS 2021: reader for its real layout, mask decoding with pycocotools, and the mini split.

Layout (train.zip / valid.zip / test.zip of the 2021 challenge):
    <root>/{train,valid,test}/instances.json
    <root>/{train,valid,test}/JPEGImages/<video>/<frame>.jpg      (the annotated frames only: 00000, 00005, ...)
instances.json: `videos` [{id, file_names ["<video>/00000.jpg", ...], width, height, length, ...}], `categories`
[{id, name, supercategory}], and (train only) `annotations` [{id, video_id, category_id, iscrowd, segmentations,
areas, bboxes, ...}] with one entry per frame in `segmentations` (RLE, uncompressed with a list `counts` or compressed
with a string, or polygons; null where the instance is not visible), `areas` and `bboxes` (null likewise).
The public valid/test files carry no annotations (scoring is on the challenge server): pass an annotated JSON of your
own (`annotations=`) to evaluate on them, or evaluate on train.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.metrics.ytvis_files import segmentation_problem, segmentation_rle, video_size
from harness.task import Sample, SampleList
from harness.video import read_image_sequence

SPLITS = ("train", "valid", "test")


class YTVIS2021(Dataset):
    name = "ytvis2021"
    mini_version = 1
    homepage = "https://youtube-vos.org/dataset/vis/ (2021 challenge: train.zip, valid.zip; CodaLab for scoring)"
    layout = "<root>/{train,valid}/instances.json and <root>/{train,valid}/JPEGImages/<video>/<frame>.jpg"

    def __init__(self) -> None:
        self._dbs: dict[str, YTVISAnnotations] = {}

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_ytvis_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video of every split's instances.json, with the JSON's problems and missing frame folders."""
        splits = [s for s in SPLITS if (Path(root) / s / "instances.json").exists()]
        if not splits:
            raise MissingDataError(self.missing_message(root, "no <split>/instances.json"))
        samples, rejected = [], []
        for split in splits:
            listing = list_ytvis(root, split, require_annotations=False)
            samples += listing.samples
            rejected += listing.rejected
        return SampleList(samples, rejected)

    def check_load(self, sample: Sample) -> None:
        json_path = sample.meta["json"]
        if json_path not in self._dbs:
            self._dbs[json_path] = load_ytvis(json_path)
        load_ytvis_video(self._dbs[json_path], sample.meta["video_id"], sample.meta["frame_root"])


# ---------------------------------------------------------------------------------------------------------------
# Annotation file
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class YTVISVideo:
    id: int
    name: str  # the frame folder, from file_names
    file_names: tuple[str, ...]
    width: int
    height: int
    length: int


@dataclass(frozen=True)
class YTVISInstance:
    id: int
    video_id: int
    category_id: int
    segmentations: tuple[Any, ...]  # per frame: RLE dict, polygon list, or None
    iscrowd: int = 0


@dataclass
class YTVISAnnotations:
    path: str
    videos: dict[int, YTVISVideo]
    categories: dict[int, str]
    instances: dict[int, list[YTVISInstance]]  # video id -> instances (empty lists when unannotated)
    has_annotations: bool
    rejected: list[dict[str, str]] = field(default_factory=list)


def load_ytvis(json_path: str | Path) -> YTVISAnnotations:
    """Parse an instances.json. Entries with problems (file_names and length disagree, a segmentation list of the
    wrong length, an unknown video or category, a mask of another size) are rejected, named by their JSON path."""
    path = Path(json_path)
    if not path.exists():
        raise MissingDataError(YTVIS2021().missing_message(path.parent.parent, f"annotation file {path}"))
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list) or "categories" not in data:
        raise DataError(str(path), "is not a YouTube-VIS instances file (needs `videos` and `categories`)")
    rejected: list[dict[str, str]] = []

    def reject(where: str, problem: str, sample_id: str = "") -> None:
        rejected.append({"sample_id": sample_id, "path": f"{path}:{where}", "error": f"{path}: {where}: {problem}"})

    categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    videos: dict[int, YTVISVideo] = {}
    for i, v in enumerate(data["videos"]):
        where = f"videos[{i}]"
        try:
            names = tuple(str(n) for n in v["file_names"])
            vid, height, width, length = video_size(v)
            video = YTVISVideo(int(vid), names[0].split("/")[0] if names else "", names, width, height, length)
        except (KeyError, TypeError, ValueError) as exc:
            reject(where, f"malformed video entry ({type(exc).__name__}: {exc})")
            continue
        if not names or video.length != len(names) or any(n.split("/")[0] != video.name for n in names):
            reject(where, f"length {video.length} and {len(names)} file_names disagree or name several folders",
                   video.name)
            continue
        videos[video.id] = video
    raw_anns = data.get("annotations")
    instances: dict[int, list[YTVISInstance]] = {vid: [] for vid in videos}
    for i, a in enumerate(raw_anns or []):
        where = f"annotations[{i}]"
        try:
            inst = YTVISInstance(int(a["id"]), int(a["video_id"]), int(a["category_id"]),
                                 tuple(a["segmentations"]), int(a.get("iscrowd", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            reject(where, f"malformed annotation ({type(exc).__name__}: {exc})")
            continue
        video = videos.get(inst.video_id)
        problem = None
        if video is None:
            problem = f"video_id {inst.video_id} is not in `videos`"
        elif inst.category_id not in categories:
            problem = f"category_id {inst.category_id} is not in `categories`"
        elif len(inst.segmentations) != video.length:
            problem = f"{len(inst.segmentations)} segmentations for a video of {video.length} frames"
        else:
            problem = _segmentation_problem(inst.segmentations, video)
        if problem:
            reject(where, problem, video.name if video else "")
            continue
        instances[inst.video_id].append(inst)
    return YTVISAnnotations(str(path), videos, categories, instances, bool(raw_anns), rejected)


def _segmentation_problem(segmentations, video: YTVISVideo) -> str | None:
    """The first frame whose segmentation the format does not allow (harness.metrics.ytvis_files decides)."""
    for t, segm in enumerate(segmentations):
        problem = segmentation_problem(segm, video.height, video.width)
        if problem:
            return f"segmentations[{t}]: {problem}"
    return None


def decode_segmentation(segm: Any, height: int, width: int) -> np.ndarray | None:
    """One frame's segmentation as a bool (H, W) mask (None when absent), through the scorer's decoder
    (harness.metrics.ytvis_files.segmentation_rle: the YouTube-VIS API's annToRLE)."""
    from pycocotools import mask as mask_utils

    try:
        rle = segmentation_rle(segm, height, width)
    except ValueError as exc:
        raise DataError(f"segmentation of a {height}x{width} video", str(exc)) from None
    return None if rle is None else mask_utils.decode(rle).astype(bool)


def instance_masks(db: YTVISAnnotations, video_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(masks bool (N, T, H, W), present bool (N, T) — False where the segmentation is null —, category ids (N,),
    instance ids (N,)) of a video's instances, in file order."""
    v = db.videos[video_id]
    insts = db.instances.get(video_id, [])
    masks = np.zeros((len(insts), v.length, v.height, v.width), bool)
    present = np.zeros((len(insts), v.length), bool)
    for n, inst in enumerate(insts):
        for t, segm in enumerate(inst.segmentations):
            m = decode_segmentation(segm, v.height, v.width)
            if m is not None:
                if m.shape != (v.height, v.width):
                    raise DataError(db.path, f"instance {inst.id} frame {t}: mask is {m.shape}, video is "
                                             f"{(v.height, v.width)}")
                masks[n, t], present[n, t] = m, True
    cats = np.array([i.category_id for i in insts], np.int64)
    ids = np.array([i.id for i in insts], np.int64)
    return masks, present, cats, ids


def encode_uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool (H, W) mask as the uncompressed RLE of the YouTube-VIS train file: column-major run lengths, starting
    with a (possibly empty) run of zeros, {"counts": [...], "size": [H, W]}."""
    flat = np.asarray(mask, bool).flatten(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"counts": [int(r) for r in runs], "size": [int(mask.shape[0]), int(mask.shape[1])]}


# ---------------------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------------------
def list_ytvis(root: str | Path, split: str = "train", annotations: str | Path | None = None,
               require_annotations: bool = True) -> SampleList:
    """One Sample per video of `<root>/<split>/instances.json` (or of `annotations`, an annotated JSON for the same
    frames, e.g. for valid whose public file has none). Videos without a frame folder are rejected."""
    root = Path(root)
    json_path = Path(annotations) if annotations else root / split / "instances.json"
    if not json_path.exists():
        raise MissingDataError(YTVIS2021().missing_message(root, f"annotation file {json_path}"))
    db = load_ytvis(json_path)
    if require_annotations and not db.has_annotations:
        raise DataError(str(json_path), f"holds no annotations (the public YouTube-VIS {split} file leaves them out; "
                                        "its scores come from the challenge server). Pass an annotated JSON for "
                                        "these frames, or evaluate on train")
    frame_root = root / split / "JPEGImages"
    samples, rejected = [], list(db.rejected)
    for v in sorted(db.videos.values(), key=lambda v: v.id):
        folder = frame_root / v.name
        if not folder.is_dir():
            rejected.append({"sample_id": v.name, "path": str(folder),
                             "error": f"{folder}: frame folder of video {v.id} ({json_path}) is missing"})
            continue
        insts = db.instances.get(v.id, [])
        cats = sorted({db.categories[i.category_id] for i in insts})
        samples.append(Sample(f"{split}/{v.name}", str(folder), stratum=cats[0] if cats else None, cluster=v.name,
                              meta={"split": split, "video_id": v.id, "video": v.name, "json": str(json_path),
                                    "frame_root": str(frame_root), "file_names": list(v.file_names),
                                    "width": v.width, "height": v.height, "length": v.length,
                                    "categories": cats, "num_instances": len(insts)}))
    return SampleList(samples, rejected)


@dataclass
class YTVISClip:
    video: YTVISVideo
    frames: np.ndarray  # uint8 (T, H, W, 3)
    masks: np.ndarray  # bool (N, T, H, W)
    present: np.ndarray  # bool (N, T)
    category_ids: np.ndarray  # (N,)
    instance_ids: np.ndarray  # (N,)
    categories: dict[int, str]

    def id_map(self) -> np.ndarray:
        """uint8 (T, H, W): 0 background, n + 1 where instance n is (a later instance wins an overlap)."""
        out = np.zeros(self.masks.shape[1:], np.uint8)
        for n in range(len(self.masks)):
            out[self.masks[n]] = n + 1
        return out


def load_ytvis_video(db: YTVISAnnotations, video_id: int, frame_root: str | Path) -> YTVISClip:
    """Frames and instance masks of one video, checked: every listed frame decodes, at the JSON's size."""
    v = db.videos[video_id]
    paths = [Path(frame_root) / n for n in v.file_names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(str(missing[0]), f"frame {len(paths) - len(missing)}/{len(paths)} of video {v.name} is missing")
    frames = read_image_sequence(paths)
    if frames.shape[1:3] != (v.height, v.width):
        raise DataError(str(paths[0]), f"frames are {frames.shape[2]}x{frames.shape[1]}, {db.path} says "
                                       f"{v.width}x{v.height}")
    masks, present, cats, ids = instance_masks(db, video_id)
    return YTVISClip(v, frames, masks, present, cats, ids, db.categories)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
MINI_FRAME_STEP = 5  # the annotated frames of the real data are every 5th: 00000, 00005, ...
# (split, size (w, h), frames, objects, an object appears late, an object leaves early)
MINI_VIDEOS = (
    ("train", (256, 144), 8, 2, True, False), ("train", (256, 144), 8, 1, False, False),
    ("train", (192, 144), 9, 3, False, True), ("train", (256, 144), 7, 2, False, True),
    ("valid", (256, 144), 8, 2, True, False), ("valid", (192, 144), 8, 2, False, False),
)
MINI_JPEG_QUALITY = 90
# Not part of the real layout: the valid split's annotations, standing for the annotated JSON a user passes with
# `annotations=` (the public valid/instances.json has none), so evaluation on valid can be exercised on the mini split.
MINI_ANNOTATED_VALID = "annotated/valid_instances.json"


def write_ytvis_mini(out: Path, seed: int = 0) -> None:
    """4 train and 2 valid videos of 7-9 frames (named every 5th, like the real ones), 256x144 or 192x144, 1-3
    instances of the shape categories (each category in both splits). train/instances.json holds uncompressed RLE per
    frame and null where an instance is not visible; valid/instances.json is the public kind, without annotations,
    and MINI_ANNOTATED_VALID holds them."""
    from PIL import Image

    from tasks.mini.scenes import random_scene, render
    from tasks.mini.vocab import YTVIS_MINI_CATEGORIES

    rng = np.random.default_rng(seed)
    categories = [{"supercategory": "object", "id": i, "name": n} for n, i in YTVIS_MINI_CATEGORIES.items()]
    files = {s: {"info": {"description": "PyraTok Bench mini split of YouTube-VIS 2021", "version": "1.0"},
                 "licenses": [], "videos": [], "categories": categories} for s in ("train", "valid")}
    annotations: dict[str, list[dict[str, Any]]] = {"train": [], "valid": []}
    names = sorted(YTVIS_MINI_CATEGORIES)
    shapes = [names[i] for i in rng.permutation(len(names))] * 4  # every category occurs in both splits
    for split, (w, h), n_frames, n_obj, late, early in MINI_VIDEOS:
        scene = random_scene(rng, num_frames=n_frames, height=h, width=w, fps=6.0, objects=n_obj)
        objs = [replace(o, shape=shapes.pop()) for o in scene.objects]
        if late:
            objs[-1] = replace(objs[-1], start=3)
        if early:
            objs[0] = replace(objs[0], end=n_frames - 3)
        scene = replace(scene, objects=tuple(objs))
        frames, ids = render(scene)
        name = "".join(f"{b:02x}" for b in rng.integers(0, 256, 5))  # 10 hex digits, like the real folders
        file_names = [f"{name}/{t * MINI_FRAME_STEP:05d}.jpg" for t in range(n_frames)]
        for f, frame in zip(file_names, frames):
            p = out / split / "JPEGImages" / f
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(p, quality=MINI_JPEG_QUALITY)
        vid = len(files[split]["videos"]) + 1
        files[split]["videos"].append({"license": 1, "coco_url": "", "flickr_url": "",
                                       "date_captured": "2021-01-01 00:00:00.000000",
                                       "height": h, "width": w, "length": n_frames, "file_names": file_names,
                                       "id": vid})
        for k, o in enumerate(scene.objects, start=1):
            annotations[split].append(_mini_annotation(ids == k, vid, YTVIS_MINI_CATEGORIES[o.shape],
                                                       len(annotations[split]) + 1))
    (out / "train" / "instances.json").write_text(json.dumps({**files["train"], "annotations": annotations["train"]}),
                                                  encoding="utf-8")
    (out / "valid" / "instances.json").write_text(json.dumps(files["valid"]), encoding="utf-8")
    (out / MINI_ANNOTATED_VALID).parent.mkdir(parents=True, exist_ok=True)
    (out / MINI_ANNOTATED_VALID).write_text(json.dumps({**files["valid"], "annotations": annotations["valid"]}),
                                            encoding="utf-8")


def _mini_annotation(masks: np.ndarray, video_id: int, category_id: int, ann_id: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    segs, areas, boxes = [], [], []
    for m in masks:
        if not m.any():
            segs.append(None), areas.append(None), boxes.append(None)
            continue
        segs.append(encode_uncompressed_rle(m))
        areas.append(int(m.sum()))
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        boxes.append([float(x) for x in mask_utils.toBbox(rle)])
    return {"video_id": video_id, "iscrowd": 0, "height": int(masks.shape[1]), "width": int(masks.shape[2]),
            "length": 1, "segmentations": segs, "bboxes": boxes, "category_id": category_id, "id": ann_id,
            "areas": areas}
